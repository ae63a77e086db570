//! Sweeps (`train --lr a,b,c --init-seed x,y`): many runs stepped together from one pass over
//! the data. Each run of a sweep gives exactly the history and weights it gives alone (the same
//! block partials added in the same order); runs stop on their own; the command writes one
//! model per run, one history, one picture, one JSON report, and fails only when every run
//! diverged.

// The command's tests run in the default build (the command with its GPU path).
#![cfg(all(feature = "cli", feature = "gpu"))]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{downhill, random_case, sweep_descent as descent};
use downhill::cpu::{CpuEngine, CpuSweep, CpuVariant};
use downhill::sweep::run_sweep;
use downhill::{Activation, Descent, Network, StopReason};

/// Each run of a CPU sweep against the same run alone: identical histories, stops and weights.
#[test]
fn every_run_of_a_sweep_is_the_run_alone() {
    let shapes: &[(&[usize], Activation, bool)] = &[
        (&[2, 2, 1], Activation::Relu, true),
        (&[2, 2, 1], Activation::Identity, false),
        (&[3, 5, 2], Activation::Relu, true),
        (&[2, 8, 8, 1], Activation::Relu, false),
        (&[8, 16, 1], Activation::Identity, true),
    ];
    // Around the tile (256), the block (16,384) and nothing at all.
    for (k, &(widths, hidden, bias)) in shapes.iter().enumerate() {
        for points in [1, 63, 64, 65, 4097, 16_385] {
            let (net, set) = random_case(widths, hidden, bias, points, k as u64);
            let rates = [0.01, 0.1, 0.5];
            let nets: Vec<Network> = rates
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    let mut moved = net.clone();
                    let params: Vec<f64> = net
                        .params()
                        .iter()
                        .map(|p| p * (1.0 + 0.1 * i as f64))
                        .collect();
                    moved.set_params(&params).unwrap();
                    moved
                })
                .collect();
            let d = descent(25);
            let mut sweep = CpuSweep::new(nets.clone(), &set, CpuVariant::Fused).unwrap();
            let together = run_sweep(&d, &rates, &mut sweep, &mut []).unwrap();
            for (i, (start, lr)) in nets.into_iter().zip(rates).enumerate() {
                let case = format!("{widths:?} {hidden:?} bias={bias} n={points} run {i}");
                let mut engine = CpuEngine::new(start, &set, CpuVariant::Fused).unwrap();
                let alone = Descent {
                    learning_rate: lr,
                    ..d.clone()
                }
                .run(&mut engine, &mut [])
                .unwrap();
                let got = &together.runs[i];
                assert_eq!(got.history, alone.history, "{case}");
                assert_eq!(got.stopped, alone.stopped, "{case}");
                assert_eq!(got.network.params(), alone.network.params(), "{case}");
                assert_eq!(got.final_loss, alone.final_loss, "{case}");
            }
        }
    }
}

/// A learning rate far too large diverges on its own; the others train to the end.
#[test]
fn a_diverging_run_stops_while_the_others_go_on() {
    let (net, set) = random_case(&[2, 2, 1], Activation::Relu, true, 3000, 4);
    let rates = [0.1, 1e4, 0.3];
    let mut sweep = CpuSweep::new(vec![net; 3], &set, CpuVariant::Fused).unwrap();
    let d = Descent {
        tolerance: 0.0,
        ..descent(40)
    };
    let outcome = run_sweep(&d, &rates, &mut sweep, &mut []).unwrap();
    assert_eq!(outcome.runs[0].stopped, StopReason::MaxSteps);
    assert_eq!(outcome.runs[2].stopped, StopReason::MaxSteps);
    assert!(matches!(
        outcome.runs[1].stopped,
        StopReason::Diverged { .. }
    ));
    assert!(outcome.runs[1].steps() < 40);
    assert!(outcome.runs[1]
        .network
        .params()
        .iter()
        .all(|p| p.is_finite()));
    assert!(outcome.runs[1].final_loss.is_finite());
    assert_eq!(outcome.runs[0].steps(), 40);
    assert_eq!(outcome.steps, 40);
}

#[test]
fn the_command_writes_one_model_per_run_one_history_one_picture() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let runs = d.join("runs");
    let out = downhill(&[
        "train",
        "--points",
        "2000",
        "--steps",
        "30",
        "--device",
        "cpu",
        "--lr",
        "0.01,0.3,1e5",
        "--init-seed",
        "1,2",
        "--out",
        runs.to_str().unwrap(),
        "--history",
        d.join("runs.csv").to_str().unwrap(),
        "--plot",
        d.join("runs.png").to_str().unwrap(),
        "--json",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("2 of 6 runs diverged"), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = report["runs"].as_array().unwrap();
    assert_eq!(list.len(), 6);
    for key in ["ms_per_step", "points", "device", "network"] {
        assert!(!report[key].is_null(), "{key}");
    }
    for (k, run) in list.iter().enumerate() {
        let lr = [0.01, 0.3, 1e5][k / 2];
        let seed = [1, 2][k % 2];
        assert_eq!(run["learning_rate"].as_f64(), Some(lr));
        assert_eq!(run["init_seed"].as_u64(), Some(seed));
        let file = Path::new(run["model_file"].as_str().unwrap()).to_path_buf();
        assert!(file.starts_with(&runs), "{file:?}");
        let model = downhill::model_file::load(&file).unwrap();
        assert!(model.params().iter().all(|p| p.is_finite()));
        let want = if lr > 1.0 { "diverged" } else { "max_steps" };
        assert_eq!(run["stopped"].as_str(), Some(want), "{run}");
    }
    assert_eq!(std::fs::read_dir(&runs).unwrap().count(), 6);

    let history = std::fs::read_to_string(d.join("runs.csv")).unwrap();
    let mut lines = history.lines();
    assert_eq!(
        lines.next(),
        Some("run,learning_rate,init_seed,step,loss,gradient_norm")
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    for (run, report) in list.iter().enumerate() {
        let steps: Vec<usize> = rows
            .iter()
            .filter(|r| r[0] == run.to_string())
            .map(|r| r[3].parse().unwrap())
            .collect();
        assert_eq!(steps, (1..=steps.len()).collect::<Vec<_>>(), "run {run}");
        let want = report["steps"].as_u64().unwrap() as usize + 1;
        assert_eq!(
            steps.len(),
            want,
            "run {run}: every step and the final state"
        );
    }

    let decoder = png::Decoder::new(std::fs::File::open(d.join("runs.png")).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (900, 600));
}

#[test]
fn the_text_report_lists_the_runs_by_final_loss() {
    let out = downhill(&[
        "train",
        "--points",
        "1000",
        "--steps",
        "20",
        "--device",
        "cpu",
        "--lr",
        "0.001,0.3,0.05",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let losses: Vec<f64> = text
        .lines()
        .skip_while(|l| !l.contains("learning rate"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().nth(4).unwrap().parse().unwrap())
        .collect();
    assert_eq!(losses.len(), 3, "{text}");
    assert!(losses.windows(2).all(|w| w[0] <= w[1]), "{text}");
    assert!(text.contains("time per sweep step"), "{text}");
}

#[test]
fn a_sweep_where_every_run_diverges_fails() {
    let out = downhill(&[
        "train", "--points", "1000", "--steps", "50", "--device", "cpu", "--lr", "1e5,1e6",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("every run diverged"));
}

#[test]
fn bad_sweeps_are_refused_before_any_work() {
    for (args, says) in [
        (vec!["--lr", "0.1,0.1"], "listed twice"),
        (vec!["--lr", "0.1,-1"], "learning rate"),
        (vec!["--lr", "0.1,x"], "x"),
    ] {
        let mut all = vec!["train", "--points", "100", "--device", "cpu"];
        all.extend(args.iter().copied());
        let out = downhill(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // --out naming an existing file, not a directory.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("model.json");
    std::fs::write(&file, "{}").unwrap();
    let out = downhill(&[
        "train",
        "--points",
        "100",
        "--device",
        "cpu",
        "--lr",
        "0.1,0.2",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
    // --out naming a model file that does not exist yet: refused, nothing made.
    let named = dir.path().join("new.json");
    let out = downhill(&[
        "train",
        "--points",
        "100",
        "--device",
        "cpu",
        "--lr",
        "0.1,0.2",
        "--out",
        named.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("names a directory"));
    assert!(!named.exists());
}

/// With --init every run starts from the file's weights: no seed in the names or the JSON.
#[test]
fn a_sweep_from_a_model_file_names_its_runs_by_rate_alone() {
    let dir = tempfile::tempdir().unwrap();
    let start = dir.path().join("start.json");
    let runs = dir.path().join("runs");
    let out = downhill(&[
        "train",
        "--points",
        "500",
        "--steps",
        "2",
        "--device",
        "cpu",
        "--out",
        start.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let out = downhill(&[
        "train",
        "--points",
        "500",
        "--steps",
        "5",
        "--device",
        "cpu",
        "--init",
        start.to_str().unwrap(),
        "--lr",
        "0.1,0.2",
        "--out",
        runs.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (run, lr) in report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["0.1", "0.2"])
    {
        assert!(run["init_seed"].is_null(), "{run}");
        assert!(runs.join(format!("lr{lr}.json")).is_file());
    }
}

/// SIGINT mid-sweep: every run's weights so far are written, and the history.
#[cfg(unix)]
#[test]
fn an_interrupted_sweep_writes_every_run() {
    let devices = common::devices();
    for device in devices {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        let child = Command::new(env!("CARGO_BIN_EXE_downhill"))
            .args([
                "train",
                "--points",
                "50000",
                "--steps",
                "100000000",
                "--tol",
                "0",
                "--device",
                device,
                "--lr",
                "0.01,0.1,0.2",
            ])
            .arg("--out")
            .arg(&runs)
            .arg("--history")
            .arg(dir.path().join("runs.csv"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Past the start (the GPU compiles its kernels first), well before the end.
        let start_ms = if device == "gpu" { 4000 } else { 1500 };
        std::thread::sleep(Duration::from_millis(start_ms));
        let status = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{device}: {err}");
        assert!(err.contains("interrupted after step"), "{device}: {err}");
        for lr in ["0.01", "0.1", "0.2"] {
            let file = runs.join(format!("lr{lr}-seed6.json"));
            let model = downhill::model_file::load(&file).unwrap();
            assert!(model.params().iter().all(|p| p.is_finite()), "{device}");
        }
        let history = std::fs::read_to_string(dir.path().join("runs.csv")).unwrap();
        assert!(history.lines().count() > 3, "{device}");
    }
}

/// On the GPU each run is brought onto one engine for its rounds: every run of a sweep again
/// takes exactly the steps it takes alone, divergence and the flat stop included.
#[test]
fn every_run_of_a_gpu_sweep_is_the_run_alone() {
    use downhill::gpu::{GpuEngine, GpuOptions, GpuSweep};
    use downhill::sweep::SweepEngine;
    let Some(ctx) = common::gpu() else { return };
    for (widths, points) in [
        (&[2usize, 2, 1][..], 4097),
        (&[3, 5, 2], 65),
        (&[8, 64, 64, 1], 300),
    ] {
        let (net, set) = random_case(widths, Activation::Relu, true, points, 9);
        let rates = [0.05, 1e5, 0.2];
        let nets: Vec<Network> = (0..3)
            .map(|i| {
                let mut moved = net.clone();
                let params: Vec<f64> = net.params().iter().map(|p| p - 0.05 * i as f64).collect();
                moved.set_params(&params).unwrap();
                moved
            })
            .collect();
        let d = Descent {
            tolerance: 0.0,
            ..descent(20)
        };
        let mut sweep = GpuSweep::new(ctx.clone(), &nets, &set, GpuOptions::default()).unwrap();
        assert_eq!(sweep.runs(), 3);
        // The per-point kernels step all three in one pass; the layered ones one at a time.
        assert_eq!(sweep.shares_passes(), widths.len() < 4, "{widths:?}");
        let together = run_sweep(&d, &rates, &mut sweep, &mut []).unwrap();
        assert!(matches!(
            together.runs[1].stopped,
            StopReason::Diverged { .. }
        ));
        for (i, (start, lr)) in nets.into_iter().zip(rates).enumerate() {
            let case = format!("{widths:?} n={points} run {i}");
            let mut engine =
                GpuEngine::new(ctx.clone(), start, &set, GpuOptions::default()).unwrap();
            let alone = Descent {
                learning_rate: lr,
                ..d.clone()
            }
            .run(&mut engine, &mut [])
            .unwrap();
            let got = &together.runs[i];
            assert_eq!(got.history, alone.history, "{case}");
            assert_eq!(got.stopped, alone.stopped, "{case}");
            assert_eq!(got.network.params(), alone.network.params(), "{case}");
        }
    }
}

/// `--verify` checks every run of a sweep against the same run on the checking path: the CPU
/// sweep against the f64 reference, the GPU's against the fused CPU kernel.
#[test]
fn a_verified_sweep_compares_every_run() {
    let devices = common::devices();
    for device in devices {
        let out = downhill(&[
            "train",
            "--points",
            "3000",
            "--steps",
            "40",
            "--device",
            device,
            "--lr",
            "0.05,0.3,1e4",
            "--verify",
            "--json",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{device}: {err}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for run in report["runs"].as_array().unwrap() {
            let v = &run["verify"];
            assert_eq!(v["passed"].as_bool(), Some(true), "{device}: {run}");
            assert!(
                v["steps_compared"].as_u64().unwrap() >= 1,
                "{device}: {run}"
            );
        }
        assert!(report["device"]
            .as_str()
            .unwrap()
            .contains("verified against"));
    }
}

/// `landscape --descend --lr a,b,c`: one descent path per learning rate on one curve, each in
/// the summary, in a picture of the asked size.
#[test]
fn a_landscape_draws_one_descent_per_learning_rate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("points.csv");
    let start = d.join("start.json");
    let picture = d.join("rates.png");
    for args in [
        vec![
            "generate",
            "--points",
            "2000",
            "--seed",
            "1",
            "--out",
            data.to_str().unwrap(),
        ],
        vec![
            "train",
            "--data",
            data.to_str().unwrap(),
            "--steps",
            "3",
            "--device",
            "cpu",
            "--out",
            start.to_str().unwrap(),
        ],
    ] {
        assert_eq!(downhill(&args).status.code(), Some(0), "{args:?}");
    }
    let out = downhill(&[
        "landscape",
        "--model",
        start.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--weight",
        "l1.n0.w0",
        "--descend",
        "--lr",
        "0.05,0.5,4",
        "--steps",
        "8",
        "--device",
        "cpu",
        "--out",
        picture.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for lr in ["0.05", "0.5", "4"] {
        assert!(text.contains(&format!("(learning rate {lr}):")), "{text}");
    }
    assert_eq!(text.matches("step   8:").count(), 3, "{text}");
    for (rates, says) in [("0.1,0.1", "listed twice"), ("0.1,0", "positive")] {
        let out = downhill(&[
            "landscape",
            "--model",
            start.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--weight",
            "l1.n0.w0",
            "--descend",
            "--lr",
            rates,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{rates}: {err}");
        assert!(err.contains(says), "{rates}: {err}");
    }
    let decoder = png::Decoder::new(std::fs::File::open(&picture).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (900, 600));
}

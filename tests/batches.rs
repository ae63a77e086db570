//! Mini-batches (`--batch-size`): one step per batch of a shuffled epoch. The CPU engine
//! against a by-hand f64 mini-batch descent written here from the plan's permutation; a batch
//! of every point against full-batch descent, exactly; the GPU (batches gathered on the
//! device) against the CPU at awkward sizes, for both kernel families and data in several
//! chunks; validation and patience counted in epochs.

mod common;

use common::random_case;
use downhill::batches::BatchPlan;
use downhill::cpu::{CpuEngine, CpuKernel, CpuVariant, Reference};
use downhill::descent::Validation;
use downhill::optimizer::{Optimizer, Schedule, UpdateRule};
use downhill::{Activation, Dataset, Descent, Engine, LossKind, Network, Outcome, StopReason};

fn adam() -> UpdateRule {
    UpdateRule {
        optimizer: Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        weight_decay: 0.0,
        schedule: Schedule::Constant,
    }
}

fn descent(steps: usize, update: UpdateRule, per_epoch: usize) -> Descent {
    Descent {
        learning_rate: 0.02,
        max_steps: steps,
        tolerance: 0.0,
        loss: LossKind::Mse,
        update,
        steps_per_epoch: per_epoch,
        ..Descent::default()
    }
}

/// Mini-batch descent by hand in f64: each epoch's permutation from the plan, each batch's
/// points picked one by one, the reference kernel's gradient of their MSE, the rule applied.
/// Returns each step's batch loss and the weights at the end.
fn by_hand(
    net: &Network,
    data: &Dataset,
    plan: &BatchPlan,
    steps: usize,
    rule: UpdateRule,
    lr: f64,
) -> (Vec<f64>, Network) {
    let mut net = net.clone();
    let mut state = Default::default();
    let mut losses = Vec::new();
    for step in 1..=steps {
        let order = plan.permutation(plan.epoch_of(step));
        let indices = &order[plan.range(plan.batch_of(step))];
        let batch = data.gathered(indices).unwrap();
        let evaluation = Reference.evaluate(&net, &batch);
        losses.push(evaluation.loss(LossKind::Mse));
        let mut params = net.params();
        rule.apply(
            &mut params,
            &evaluation.gradient(LossKind::Mse),
            lr,
            &mut state,
        );
        net.set_params(&params).unwrap();
    }
    (losses, net)
}

fn largest_gap(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1e-9))
        .fold(0.0, f64::max)
}

#[test]
fn the_cpu_engine_takes_the_batches_of_the_plan() {
    for (points, size, seed) in [
        (65, 64, 1),
        (100, 7, 2),
        (63, 63, 3),
        (1, 1, 4),
        (130, 64, 5),
    ] {
        let (net, data) = random_case(&[2, 3, 1], Activation::Tanh, true, points, seed);
        let plan = BatchPlan::new(points, size, seed).unwrap();
        let steps = 3 * plan.per_epoch() + 1;
        let rule = adam();
        let (want, want_net) = by_hand(&net, &data, &plan, steps, rule, 0.02);
        let mut engine =
            CpuEngine::with_batches(net.clone(), &data, CpuVariant::Fused, plan).unwrap();
        let outcome = descent(steps, rule, plan.per_epoch())
            .run(&mut engine, &mut [])
            .unwrap();
        let got: Vec<f64> = outcome.history.iter().map(|r| r.loss).collect();
        assert_eq!(got.len(), steps);
        let gap = largest_gap(&got, &want);
        assert!(
            gap < 1e-4,
            "{points} points, batches of {size}: gap {gap:e}"
        );
        let weights = downhill::verify::weight_deviation(&outcome.network, &want_net);
        assert!(weights < 1e-4, "weights apart by {weights:e}");
        // The final evaluation is over every point, not the last batch.
        let all = Reference
            .evaluate(&outcome.network, &data)
            .loss(LossKind::Mse);
        assert!((outcome.final_loss - all).abs() <= 1e-4 * all, "{all}");
    }
}

#[test]
fn a_batch_of_every_point_is_full_batch_descent_exactly() {
    let (net, data) = random_case(&[2, 4, 1], Activation::Relu, true, 200, 9);
    let plan = BatchPlan::new(200, 200, 9).unwrap();
    let run = |mut engine: Box<dyn Engine + '_>| {
        descent(30, adam(), 1)
            .run(engine.as_mut(), &mut [])
            .unwrap()
    };
    let full = run(Box::new(
        CpuEngine::new(net.clone(), &data, CpuVariant::Fused).unwrap(),
    ));
    let batched = run(Box::new(
        CpuEngine::with_batches(net.clone(), &data, CpuVariant::Fused, plan).unwrap(),
    ));
    assert_eq!(full.history, batched.history);
    assert_eq!(full.network, batched.network);
}

#[test]
fn validation_and_patience_count_epochs() {
    let (net, data) = random_case(&[2, 8, 1], Activation::Relu, true, 400, 11);
    let (training, held_out) = data.split(0.25, 11).unwrap();
    let plan = BatchPlan::new(training.len(), 32, 11).unwrap();
    let per_epoch = plan.per_epoch();
    let mut engine =
        CpuEngine::with_batches(net.clone(), &training, CpuVariant::Fused, plan).unwrap();
    let mut kernel = Reference;
    let mut seen = Vec::new();
    let mut loss = |n: &Network| {
        seen.push(n.clone());
        Ok(kernel.evaluate(n, &held_out).loss(LossKind::Mse))
    };
    let mut rule = descent(40 * per_epoch, adam(), per_epoch);
    // A rate far too high for the held-out loss to keep falling.
    rule.learning_rate = 0.5;
    let outcome: Outcome = rule
        .run_validated(
            &mut engine,
            &mut [],
            Some(Validation {
                loss: &mut loss,
                patience: Some(2),
            }),
        )
        .unwrap();
    let epochs = outcome.validation_history.len();
    assert_eq!(seen.len(), epochs);
    let StopReason::Early { best_step } = outcome.stopped else {
        panic!("expected an early stop, got {:?}", outcome.stopped);
    };
    // Validated at the end of every epoch; stopped two epochs after the best.
    assert_eq!(outcome.steps(), epochs * per_epoch);
    assert_eq!(best_step % per_epoch, 0);
    assert_eq!(best_step / per_epoch + 2, epochs);
    let best = outcome.validation_history[best_step / per_epoch - 1];
    assert!(outcome.validation_history.iter().all(|&l| l >= best));
    assert_eq!(outcome.network, seen[best_step / per_epoch - 1]);
    assert_eq!(plan.epoch_losses(&outcome.history).len(), epochs);
}

/// Rates for a sweep: one of them far too large, so that it diverges while the others go on.
const SWEEP_RATES: [f64; 4] = [0.01, 0.05, 0.2, 1e4];

/// Each run of a sweep on mini-batches against the same run alone: on the CPU exactly (every
/// run takes the same batches, evaluated in one pass).
#[test]
fn each_run_of_a_cpu_sweep_on_batches_is_the_run_alone() {
    use downhill::cpu::CpuSweep;
    use downhill::sweep::run_sweep;
    let (net, data) = random_case(&[2, 4, 1], Activation::Relu, true, 130, 31);
    let plan = BatchPlan::new(130, 32, 31).unwrap();
    let mut rule = descent(
        3 * plan.per_epoch() + 2,
        UpdateRule::default(),
        plan.per_epoch(),
    );
    rule.round = Some(4);
    let nets = vec![net.clone(); SWEEP_RATES.len()];
    let mut sweep = CpuSweep::with_batches(nets, &data, CpuVariant::Fused, plan).unwrap();
    let outcome = run_sweep(&rule, &SWEEP_RATES, &mut sweep, &mut []).unwrap();
    assert!(matches!(
        outcome.runs[3].stopped,
        StopReason::Diverged { .. }
    ));
    for (r, &learning_rate) in SWEEP_RATES.iter().enumerate() {
        let mut engine =
            CpuEngine::with_batches(net.clone(), &data, CpuVariant::Fused, plan).unwrap();
        let alone = Descent {
            learning_rate,
            ..rule.clone()
        }
        .run(&mut engine, &mut [])
        .unwrap();
        let got = &outcome.runs[r];
        assert_eq!(got.stopped, alone.stopped, "run {r}");
        assert_eq!(got.history, alone.history, "run {r}");
        assert_eq!(got.network, alone.network, "run {r}");
    }
}

#[cfg(feature = "gpu")]
mod gpu {
    use super::*;
    use downhill::gpu::{GpuEngine, GpuOptions};

    /// The GPU's batches are the CPU's: the same permutation, gathered on the device, the
    /// last smaller batch averaged over its own points.
    #[test]
    fn the_gpu_takes_the_batches_the_cpu_takes() {
        let Some(ctx) = common::gpu() else { return };
        let cases: [(&[usize], usize, usize, GpuOptions); 5] = [
            (&[2, 2, 1], 65, 64, GpuOptions::default()),
            (&[2, 2, 1], 1000, 63, GpuOptions::default()),
            (&[3, 5, 2], 130, 1, GpuOptions::default()),
            // The layered kernels.
            (
                &[2, 6, 1],
                300,
                64,
                GpuOptions {
                    layered: true,
                    ..GpuOptions::default()
                },
            ),
            // The training data in several chunks, each batch gathered from all of them.
            (
                &[2, 2, 1],
                500,
                40,
                GpuOptions {
                    max_binding_bytes: Some(1024),
                    ..GpuOptions::default()
                },
            ),
        ];
        for (i, (widths, points, size, options)) in cases.into_iter().enumerate() {
            let (net, data) = random_case(widths, Activation::Relu, true, points, i as u64);
            let plan = BatchPlan::new(points, size, 3).unwrap();
            let steps = 2 * plan.per_epoch() + 3;
            let rule = descent(steps, adam(), plan.per_epoch());
            let mut gpu =
                GpuEngine::with_batches(ctx.clone(), net.clone(), &data, options, plan).unwrap();
            let mut cpu = CpuEngine::with_batches(net, &data, CpuVariant::Fused, plan).unwrap();
            let on_gpu = rule.run(&mut gpu, &mut []).unwrap();
            let on_cpu = rule.run(&mut cpu, &mut []).unwrap();
            let losses = |o: &Outcome| o.history.iter().map(|r| r.loss).collect::<Vec<_>>();
            assert_eq!(on_gpu.steps(), steps, "case {i}");
            let gap = largest_gap(&losses(&on_gpu), &losses(&on_cpu));
            assert!(gap < 1e-3, "case {i}: batch losses apart by {gap:e}");
            let weights = downhill::verify::weight_deviation(&on_gpu.network, &on_cpu.network);
            assert!(weights < 1e-3, "case {i}: weights apart by {weights:e}");
            let final_gap = (on_gpu.final_loss - on_cpu.final_loss).abs() / on_cpu.final_loss;
            assert!(
                final_gap < 1e-3,
                "case {i}: final losses apart by {final_gap:e}"
            );
        }
    }

    /// Each run of a GPU sweep on mini-batches (every run from one read of each batch, or
    /// with the layered kernels one run at a time) against the CPU's sweep.
    #[test]
    fn each_run_of_a_gpu_sweep_on_batches_follows_the_cpu() {
        use downhill::cpu::CpuSweep;
        use downhill::gpu::GpuSweep;
        use downhill::sweep::run_sweep;
        let Some(ctx) = common::gpu() else { return };
        let layered = GpuOptions {
            layered: true,
            ..GpuOptions::default()
        };
        for (case, options) in [GpuOptions::default(), layered].into_iter().enumerate() {
            let (net, data) = random_case(&[2, 4, 1], Activation::Relu, true, 130, 41);
            let plan = BatchPlan::new(130, 32, 41).unwrap();
            let mut rule = descent(3 * plan.per_epoch() + 2, adam(), plan.per_epoch());
            rule.round = Some(4);
            let nets = vec![net.clone(); SWEEP_RATES.len()];
            let mut gpu = GpuSweep::with_batches(ctx.clone(), &nets, &data, options, plan).unwrap();
            let mut cpu = CpuSweep::with_batches(nets, &data, CpuVariant::Fused, plan).unwrap();
            let on_gpu = run_sweep(&rule, &SWEEP_RATES, &mut gpu, &mut []).unwrap();
            let on_cpu = run_sweep(&rule, &SWEEP_RATES, &mut cpu, &mut []).unwrap();
            for (r, (g, c)) in on_gpu.runs.iter().zip(&on_cpu.runs).enumerate() {
                assert_eq!(g.stopped.name(), c.stopped.name(), "case {case} run {r}");
                if r == 3 {
                    continue; // diverged: its last losses are huge and far apart
                }
                assert_eq!(g.steps(), c.steps(), "case {case} run {r}");
                let losses = |o: &Outcome| o.history.iter().map(|h| h.loss).collect::<Vec<_>>();
                let gap = largest_gap(&losses(g), &losses(c));
                assert!(gap < 1e-3, "case {case} run {r}: losses apart by {gap:e}");
                let weights = downhill::verify::weight_deviation(&g.network, &c.network);
                assert!(
                    weights < 1e-3,
                    "case {case} run {r}: weights apart by {weights:e}"
                );
            }
        }
    }
}

/// The command: an epoch column in the history, `epoch_loss_history` in the JSON, and the
/// issue's example (Adam on batches of 200 with a validation split and patience) on every
/// device, drawing both curves.
#[test]
#[cfg(feature = "cli")]
fn train_takes_batches_and_epochs_on_every_device() {
    let dir = tempfile::tempdir().unwrap();
    for device in common::devices() {
        let history = dir.path().join(format!("history-{device}.csv"));
        let plot = dir.path().join(format!("fit-{device}.png"));
        let out = common::downhill(&[
            "train",
            "--layers",
            "8,64,64,1",
            "--points",
            "2000",
            "--optimizer",
            "adam",
            "--lr",
            "0.001",
            "--batch-size",
            "200",
            "--epochs",
            "20",
            "--validation",
            "0.1",
            "--patience",
            "3",
            "--device",
            device,
            "--json",
            "--history",
            common::path_str(&history),
            "--plot",
            common::path_str(&plot),
        ]);
        assert!(out.status.success(), "{device}: {}", common::stderr(&out));
        let report: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
        // 1,800 training points in batches of 200: nine steps an epoch.
        assert_eq!(report["steps_per_epoch"], 9, "{device}");
        assert_eq!(report["batch_size"], 200);
        let steps = report["steps"].as_u64().unwrap() as usize;
        let epochs = report["epoch_loss_history"].as_array().unwrap();
        let validated = report["validation_loss_history"].as_array().unwrap();
        assert_eq!(epochs.len(), steps / 9, "{device}");
        assert_eq!(validated.len(), steps / 9, "{device}");
        assert!(
            steps <= 180 && steps.is_multiple_of(9),
            "{device}: {steps} steps"
        );
        let batch_losses: Vec<f64> = report["loss_history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let first_epoch: f64 = batch_losses[..9].iter().sum::<f64>() / 9.0;
        let reported = epochs[0].as_f64().unwrap();
        assert!(
            (first_epoch - reported).abs() <= 1e-9 * reported,
            "{device}"
        );
        let text = std::fs::read_to_string(&history).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("step,epoch,loss,gradient_norm,validation_loss")
        );
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), steps + 1);
        assert_eq!(rows[8][1], "1");
        assert_eq!(rows[9][1], "2");
        // The held-out loss stands in the first row of each epoch's weights.
        assert_eq!(rows[8][4], "");
        assert!(!rows[9][4].is_empty());
        assert!(std::fs::metadata(&plot).unwrap().len() > 1000);
    }
}

#[test]
#[cfg(feature = "cli")]
fn bad_batch_values_exit_2_naming_the_flag() {
    for (args, flag) in [
        (&["--batch-size", "0"][..], "--batch-size 0"),
        (&["--batch-size", "101"][..], "--batch-size 101"),
        (
            &["--batch-size", "80", "--validation", "0.5"][..],
            "--batch-size 80",
        ),
        (&["--epochs", "2", "--steps", "3"][..], "--epochs"),
    ] {
        let mut all = vec!["train", "--points", "100", "--device", "cpu"];
        all.extend_from_slice(args);
        let out = common::downhill(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            common::stderr(&out).contains(flag),
            "{args:?}: {}",
            common::stderr(&out)
        );
    }
}

/// A batch's gradient says nothing about a flat spot: with mini-batches the run is not
/// stopped by `--tol`, however large (at full batch it stops at once).
#[test]
fn a_small_batch_gradient_does_not_stop_the_run() {
    let (net, data) = random_case(&[2, 3, 1], Activation::Relu, true, 50, 21);
    let plan = BatchPlan::new(50, 1, 21).unwrap();
    let mut rule = descent(120, UpdateRule::default(), plan.per_epoch());
    rule.tolerance = 1e3;
    let mut engine = CpuEngine::with_batches(net.clone(), &data, CpuVariant::Fused, plan).unwrap();
    let outcome = rule.run(&mut engine, &mut []).unwrap();
    assert_eq!(outcome.stopped, StopReason::MaxSteps);
    assert_eq!(outcome.steps(), 120);
    rule.steps_per_epoch = 1;
    let mut full = CpuEngine::new(net, &data, CpuVariant::Fused).unwrap();
    let outcome = rule.run(&mut full, &mut []).unwrap();
    assert!(matches!(outcome.stopped, StopReason::Flat { .. }));
}

/// A sweep on mini-batches from the command: every run's epochs in the JSON, an epoch column
/// in the sweep's history.
#[test]
#[cfg(feature = "cli")]
fn a_sweep_takes_batches_on_every_device() {
    let dir = tempfile::tempdir().unwrap();
    for device in common::devices() {
        let history = dir.path().join(format!("sweep-{device}.csv"));
        let out = common::downhill(&[
            "train",
            "--points",
            "100",
            "--lr",
            "0.05,0.1",
            "--optimizer",
            "momentum",
            "--batch-size",
            "30",
            "--epochs",
            "3",
            "--device",
            device,
            "--json",
            "--history",
            common::path_str(&history),
        ]);
        assert!(out.status.success(), "{device}: {}", common::stderr(&out));
        let report: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
        for run in report["runs"].as_array().unwrap() {
            assert_eq!(run["steps"], 12, "{device}");
            assert_eq!(run["steps_per_epoch"], 4);
            assert_eq!(run["epoch_loss_history"].as_array().unwrap().len(), 3);
        }
        let text = std::fs::read_to_string(&history).unwrap();
        assert!(text.starts_with("run,learning_rate,init_seed,step,epoch,loss,gradient_norm\n"));
        // Two runs of 12 steps and an end row each, epochs 1 to 3.
        let epochs: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(4).unwrap())
            .collect();
        assert_eq!(epochs.len(), 26);
        assert_eq!((epochs[0], epochs[4], epochs[12]), ("1", "2", "3"));
    }
}

/// `--init` continues a mini-batch Adam run exactly as if it had not stopped: the resumed run
/// takes the batches the whole run takes next (within an epoch too), on every device.
#[test]
#[cfg(feature = "cli")]
fn a_mini_batch_run_resumed_with_init_continues_exactly() {
    for device in common::devices() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        let train = |steps: &str, init: Option<&str>, out: &str| {
            let mut args = vec![
                "train",
                "--points",
                "500",
                "--optimizer",
                "adam",
                "--lr",
                "0.02",
                "--tol",
                "0",
                "--batch-size",
                "64",
                "--device",
                device,
                "--steps",
                steps,
                "--out",
                out,
            ];
            match init {
                Some(init) => args.extend(["--init", init]),
                None => args.extend(["--layers", "2,5,1"]),
            }
            let out = common::downhill(&args);
            assert!(out.status.success(), "{}", common::stderr(&out));
        };
        // 8 batches an epoch: the break falls within the second epoch.
        let (whole, part, resumed) = (file("whole.json"), file("part.json"), file("resumed.json"));
        train("20", None, &whole);
        train("11", None, &part);
        train("9", Some(&part), &resumed);
        let want = downhill::model_file::load(std::path::Path::new(&whole)).unwrap();
        let got = downhill::model_file::load(std::path::Path::new(&resumed)).unwrap();
        assert_eq!(got.params(), want.params(), "{device}");
    }
}

/// Plain descent on mini-batches with a rate schedule, resumed from its model and history,
/// writes the same model and the same history (batches, rates) as the run not interrupted.
#[test]
#[cfg(feature = "cli")]
fn a_scheduled_plain_descent_resumed_writes_the_whole_runs_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let train = |epochs: &str, init: Option<&str>, out: &str, history: &str| {
        let mut args = vec![
            "train",
            "--points",
            "1000",
            "--batch-size",
            "300",
            "--lr-schedule",
            "exp:0.5",
            "--validation",
            "0.2",
            "--device",
            "cpu",
            "--epochs",
            epochs,
            "--out",
            out,
            "--history",
            history,
        ];
        if let Some(init) = init {
            args.extend(["--init", init]);
        }
        let out = common::downhill(&args);
        assert!(out.status.success(), "{}", common::stderr(&out));
    };
    train("4", None, &file("whole.json"), &file("whole.csv"));
    train("2", None, &file("part.json"), &file("part.csv"));
    train(
        "2",
        Some(&file("part.json")),
        &file("part.json"),
        &file("part.csv"),
    );
    let read = |name: &str| std::fs::read_to_string(file(name)).unwrap();
    assert_eq!(read("part.csv"), read("whole.csv"));
    assert_eq!(read("part.json"), read("whole.json"));
}

/// A mini-batch run that blows up stops against a million times the starting loss over every
/// point, and keeps weights whose loss is finite (the history ends with their row).
#[test]
#[cfg(feature = "cli")]
fn a_diverging_mini_batch_run_keeps_finite_weights() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("h.csv");
    let out = common::downhill(&[
        "train",
        "--points",
        "1000",
        "--batch-size",
        "1",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--json",
        "--history",
        common::path_str(&history),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    assert_eq!(report["stopped"], "diverged");
    let steps = report["steps"].as_u64().unwrap() as usize;
    assert!(steps < 1000);
    assert!(report["final_loss"].as_f64().unwrap().is_finite());
    let rows = std::fs::read_to_string(&history).unwrap().lines().count();
    assert_eq!(rows, steps + 2, "header, the steps and the end row");
}

//! A validation split (`--validation F`) and early stopping (`--patience N`): the split is
//! seeded and disjoint, the held-out loss is recorded after every step on both paths, and an
//! early stop goes back to the weights with the lowest validation loss.

mod common;

use common::random_case;
use downhill::cpu::{CpuEngine, CpuKernel, CpuVariant, Reference};
use downhill::descent::Validation;
use downhill::{Activation, Descent, LossKind, Network, Result, StopReason};

fn descent(steps: usize) -> Descent {
    Descent {
        learning_rate: 0.05,
        max_steps: steps,
        ..Descent::default()
    }
}

/// The split keeps every point exactly once, in order, and depends on the seed alone.
#[test]
fn the_split_is_seeded_and_disjoint() {
    let (_, set) = random_case(&[2, 2, 1], Activation::Relu, true, 1000, 1);
    let (training, held_out) = set.split(0.2, 7).unwrap();
    assert_eq!((training.len(), held_out.len()), (800, 200));
    let mut all: Vec<(Vec<f32>, Vec<f32>)> = (0..training.len())
        .map(|i| training.point(i))
        .chain((0..held_out.len()).map(|i| held_out.point(i)))
        .collect();
    let mut want: Vec<(Vec<f32>, Vec<f32>)> = (0..set.len()).map(|i| set.point(i)).collect();
    let key = |p: &(Vec<f32>, Vec<f32>)| format!("{p:?}");
    all.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(all, want);
    let again = set.split(0.2, 7).unwrap();
    assert_eq!(again.1, held_out);
    assert_ne!(set.split(0.2, 8).unwrap().1, held_out);
    for bad in [0.0, 1.0, -0.5, 1e-9, f64::NAN] {
        assert!(set.split(bad, 7).is_err(), "{bad}");
    }
}

/// The held-out loss after every step is the reference loss of the weights after that step;
/// with patience, the run stops once the held-out loss has not fallen for that many steps and
/// ends at the weights that had the lowest.
#[test]
fn early_stopping_goes_back_to_the_best_weights() {
    let (net, set) = random_case(&[2, 4, 1], Activation::Tanh, true, 300, 2);
    let (_, held_out) = random_case(&[2, 4, 1], Activation::Relu, true, 100, 9);
    // Without patience: the held-out loss of each step's weights, step by step.
    let mut seen: Vec<Network> = Vec::new();
    let mut record = |n: &Network| -> Result<f64> {
        seen.push(n.clone());
        Ok(Reference.evaluate(n, &held_out).loss(LossKind::Mse))
    };
    let mut engine = CpuEngine::new(net.clone(), &set, CpuVariant::Fused).unwrap();
    let validation = Validation {
        loss: &mut record,
        patience: None,
    };
    let full = descent(40)
        .run_validated(&mut engine, &mut [], Some(validation))
        .unwrap();
    assert_eq!(full.validation_history.len(), 40);
    assert_eq!(seen.len(), 40);
    // A scripted held-out loss that is lowest after step 5: patience 3 stops after step 8.
    let script = [9.0, 8.0, 7.0, 6.0, 5.0, 5.5, 6.0, 5.2, 4.0];
    let mut calls = 0;
    let mut scripted = |_: &Network| -> Result<f64> {
        calls += 1;
        Ok(script[calls - 1])
    };
    let mut engine = CpuEngine::new(net.clone(), &set, CpuVariant::Fused).unwrap();
    let validation = Validation {
        loss: &mut scripted,
        patience: Some(3),
    };
    let early = descent(40)
        .run_validated(&mut engine, &mut [], Some(validation))
        .unwrap();
    assert_eq!(early.stopped, StopReason::Early { best_step: 5 });
    assert_eq!(early.history.len(), 8);
    assert_eq!(early.validation_history, script[..8].to_vec());
    // The weights are those after step 5 of the same descent.
    assert_eq!(early.network.params(), seen[4].params());
    let mut engine = CpuEngine::new(net, &set, CpuVariant::Fused).unwrap();
    let five = descent(5).run(&mut engine, &mut []).unwrap();
    assert_eq!(early.network.params(), five.network.params());
    assert_eq!(early.final_loss, five.final_loss);
}

/// The command: the held-out points are named, every step's validation loss is in the JSON
/// and the history, the picture has both curves; bad values exit 2.
#[cfg(feature = "cli")]
#[test]
fn the_command_records_the_validation_loss() {
    let devices = common::devices();
    let mut histories = Vec::new();
    for device in devices {
        let dir = tempfile::tempdir().unwrap();
        let history = dir.path().join("h.csv");
        let picture = dir.path().join("fit.png");
        let out = common::downhill(&[
            "train",
            "--points",
            "2000",
            "--layers",
            "2,6,1",
            "--steps",
            "30",
            "--tol",
            "0",
            "--validation",
            "0.25",
            "--patience",
            "1000",
            "--device",
            device,
            "--json",
            "--history",
            history.to_str().unwrap(),
            "--plot",
            picture.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["points"], 1500);
        let held: Vec<f64> = report["validation_loss_history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(held.len(), 30, "{device}");
        assert!(report["best_epoch"].as_u64().is_some());
        let text = std::fs::read_to_string(&history).unwrap();
        assert!(text.starts_with("step,loss,gradient_norm,validation_loss\n"));
        // The first row (the starting weights) has none; row k+2 has step k+1's.
        let second: Vec<&str> = text.lines().nth(2).unwrap().split(',').collect();
        let value: f64 = second[3].parse().unwrap();
        assert!((value - held[0]).abs() <= 1e-12 * held[0].abs(), "{text}");
        assert!(std::fs::metadata(&picture).unwrap().len() > 0);
        histories.push(held);
    }
    if let [cpu, gpu] = &histories[..] {
        for (c, g) in cpu.iter().zip(gpu) {
            assert!((c - g).abs() <= 1e-4 * c, "cpu {c} gpu {g}");
        }
    }
    let base = [
        "train", "--points", "300", "--steps", "3", "--device", "cpu",
    ];
    for extra in [
        &["--validation", "0"][..],
        &["--validation", "1.5"],
        &["--validation", "1e-9"],
        &["--patience", "3"],
        &["--validation", "0.2", "--lr", "0.1,0.2", "--patience", "0"],
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let out = common::downhill(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// In a sweep each run is validated and stopped early on its own, exactly as it is alone
/// (CPU), and the engine holds each early-stopped run's best weights at the end (CPU and GPU,
/// the GPU's one-pass runs and its parked layered runs).
#[test]
fn each_run_of_a_sweep_stops_early_on_its_own() {
    use downhill::cpu::CpuSweep;
    use downhill::sweep::{run_sweep_validated, SweepEngine};
    let (net, data) = random_case(&[2, 6, 1], Activation::Relu, true, 300, 13);
    let (training, held_out) = data.split(0.3, 13).unwrap();
    let rates = [0.01, 0.3, 3.0];
    let rule = Descent {
        max_steps: 150,
        update: downhill::optimizer::UpdateRule {
            optimizer: downhill::optimizer::Optimizer::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            ..Default::default()
        },
        ..descent(150)
    };
    let validated = |engine: &mut dyn SweepEngine| {
        let mut kernel = Reference;
        let mut loss =
            |n: &Network| -> Result<f64> { Ok(kernel.evaluate(n, &held_out).loss(LossKind::Mse)) };
        let validation = Validation {
            loss: &mut loss,
            patience: Some(3),
        };
        run_sweep_validated(&rule, &rates, engine, &mut [], Some(validation)).unwrap()
    };
    let nets = vec![net.clone(); rates.len()];
    let mut sweep = CpuSweep::new(nets.clone(), &training, CpuVariant::Fused).unwrap();
    let on_cpu = validated(&mut sweep);
    assert!(on_cpu
        .runs
        .iter()
        .any(|o| matches!(o.stopped, StopReason::Early { .. })));
    for (r, &learning_rate) in rates.iter().enumerate() {
        let mut engine = CpuEngine::new(net.clone(), &training, CpuVariant::Fused).unwrap();
        let mut kernel = Reference;
        let mut loss =
            |n: &Network| -> Result<f64> { Ok(kernel.evaluate(n, &held_out).loss(LossKind::Mse)) };
        let alone = Descent {
            learning_rate,
            ..rule.clone()
        }
        .run_validated(
            &mut engine,
            &mut [],
            Some(Validation {
                loss: &mut loss,
                patience: Some(3),
            }),
        )
        .unwrap();
        let got = &on_cpu.runs[r];
        assert_eq!(got.stopped, alone.stopped, "run {r}");
        assert_eq!(got.history, alone.history, "run {r}");
        assert_eq!(got.validation_history, alone.validation_history, "run {r}");
        assert_eq!(got.network, alone.network, "run {r}");
        assert_eq!(got.final_loss, alone.final_loss, "run {r}");
    }
    #[cfg(feature = "gpu")]
    if let Some(ctx) = common::gpu() {
        use downhill::gpu::{GpuOptions, GpuSweep};
        let layered = GpuOptions {
            layered: true,
            ..GpuOptions::default()
        };
        for options in [GpuOptions::default(), layered] {
            let mut sweep = GpuSweep::new(ctx.clone(), &nets, &training, options).unwrap();
            let on_gpu = validated(&mut sweep);
            for (r, (g, c)) in on_gpu.runs.iter().zip(&on_cpu.runs).enumerate() {
                assert_eq!(g.stopped.name(), c.stopped.name(), "{options:?} run {r}");
                // An early-stopped run ends at its best weights: the validation loss there
                // is the lowest recorded.
                if let StopReason::Early { best_step } = g.stopped {
                    let lowest = g.validation_history[best_step - 1];
                    let at_end = Reference
                        .evaluate(&g.network, &held_out)
                        .loss(LossKind::Mse);
                    assert!(
                        (at_end - lowest).abs() <= 1e-5 * lowest,
                        "{options:?} run {r}"
                    );
                    assert!(g.validation_history.iter().all(|&l| l >= lowest));
                }
            }
        }
    }
}

//! The update rules (`--optimizer gd|momentum|nesterov|adam`, `--weight-decay`) against a
//! by-hand f64 implementation of PyTorch's `torch.optim.SGD` and `torch.optim.Adam`, written
//! here from their documentation and independent of `src/optimizer.rs`; the GPU against the
//! CPU; sweeps against runs alone; bad values refused.

mod common;

use common::{random_case, sweep_descent};
use downhill::cpu::{CpuEngine, CpuKernel, CpuSweep, CpuVariant, Reference};
use downhill::optimizer::{Optimizer, Schedule, UpdateRule};
use downhill::sweep::run_sweep;
use downhill::{Activation, Dataset, Descent, LossKind, Network};

/// Every rule the command offers, with and without weight decay, and rate schedules.
fn rules() -> Vec<UpdateRule> {
    let with = |optimizer, weight_decay| UpdateRule {
        optimizer,
        weight_decay,
        schedule: Schedule::Constant,
    };
    let scheduled = |optimizer, schedule| UpdateRule {
        optimizer,
        weight_decay: 0.0,
        schedule,
    };
    vec![
        with(Optimizer::Gd, 0.01),
        with(
            Optimizer::Momentum {
                momentum: 0.9,
                nesterov: false,
            },
            0.0,
        ),
        with(
            Optimizer::Momentum {
                momentum: 0.7,
                nesterov: true,
            },
            0.02,
        ),
        with(
            Optimizer::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            0.0,
        ),
        with(
            Optimizer::Adam {
                beta1: 0.8,
                beta2: 0.99,
                eps: 1e-6,
            },
            0.05,
        ),
        scheduled(
            Optimizer::Gd,
            Schedule::Step {
                every: 4,
                factor: 0.5,
            },
        ),
        scheduled(
            Optimizer::Momentum {
                momentum: 0.9,
                nesterov: false,
            },
            Schedule::Exp { factor: 0.95 },
        ),
        scheduled(
            Optimizer::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            Schedule::Cosine { total: 20 },
        ),
    ]
}

/// PyTorch's StepLR, ExponentialLR and CosineAnnealingLR (eta_min 0), stepped once per update:
/// the rate of update `t` (1-based).
fn scheduled_rate(schedule: &Schedule, lr: f64, t: usize) -> f64 {
    let epoch = (t - 1) as i32;
    match *schedule {
        Schedule::Constant => lr,
        Schedule::Step { every, factor } => lr * factor.powi(epoch / every as i32),
        Schedule::Exp { factor } => lr * factor.powi(epoch),
        Schedule::Cosine { total } => {
            lr * (1.0 + (std::f64::consts::PI * f64::from(epoch) / total as f64).cos()) / 2.0
        }
    }
}

/// `steps` updates of `net` by PyTorch's rule, each from the f64 reference's MSE gradient.
fn by_hand(net: &Network, set: &Dataset, rule: &UpdateRule, lr: f64, steps: usize) -> Vec<f64> {
    let mut p = net.params();
    let n = p.len();
    let (mut buf, mut m, mut v) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut probe = net.clone();
    for t in 1..=steps {
        let lr = scheduled_rate(&rule.schedule, lr, t);
        probe.set_params(&p).unwrap();
        let grad = Reference.evaluate(&probe, set).gradient(LossKind::Mse);
        for k in 0..n {
            // torch.optim: d_p = grad + weight_decay * p
            let g = grad[k] + rule.weight_decay * p[k];
            match rule.optimizer {
                Optimizer::Gd => p[k] -= lr * g,
                Optimizer::Momentum { momentum, nesterov } => {
                    // buf = d_p at the first step, then momentum * buf + (1 - dampening) * d_p
                    buf[k] = if t == 1 { g } else { momentum * buf[k] + g };
                    let d = if nesterov {
                        g + momentum * buf[k]
                    } else {
                        buf[k]
                    };
                    p[k] -= lr * d;
                }
                Optimizer::Adam { beta1, beta2, eps } => {
                    m[k] = beta1 * m[k] + (1.0 - beta1) * g;
                    v[k] = beta2 * v[k] + (1.0 - beta2) * g * g;
                    let bias1 = 1.0 - beta1.powi(t as i32);
                    let bias2 = 1.0 - beta2.powi(t as i32);
                    let denom = (v[k] / bias2).sqrt() + eps;
                    p[k] -= lr * (m[k] / bias1) / denom;
                }
            }
        }
    }
    p
}

fn descent(rule: UpdateRule, lr: f64, steps: usize) -> Descent {
    Descent {
        learning_rate: lr,
        update: rule,
        ..sweep_descent(steps)
    }
}

/// The f64 reference engine takes exactly PyTorch's steps (up to the order of a few f64
/// operations), for every rule, over rounds of 7 steps.
#[test]
fn every_rule_is_pytorchs_rule() {
    for (k, rule) in rules().into_iter().enumerate() {
        for widths in [&[2usize, 2, 1][..], &[3, 4, 2]] {
            let (net, set) = random_case(widths, Activation::Tanh, true, 50, k as u64);
            let lr = 0.05;
            let want = by_hand(&net, &set, &rule, lr, 20);
            let mut engine = CpuEngine::new(net.clone(), &set, CpuVariant::Reference).unwrap();
            let got = descent(rule, lr, 20).run(&mut engine, &mut []).unwrap();
            assert_eq!(got.history.len(), 20, "{rule:?}");
            for (g, w) in got.network.params().iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-9 * (1.0 + w.abs()),
                    "{rule:?} {widths:?}: {g} vs {w}"
                );
            }
        }
    }
}

/// Every run of a CPU sweep with a rule is the run alone (its state is its own).
#[test]
fn a_sweep_keeps_each_runs_state() {
    let (net, set) = random_case(&[2, 3, 1], Activation::Relu, true, 400, 3);
    let nets = vec![net.clone(); 3];
    let rates = [0.01, 0.03, 0.1];
    for rule in rules() {
        let d = descent(rule, 0.01, 25);
        let mut sweep = CpuSweep::new(nets.clone(), &set, CpuVariant::Fused).unwrap();
        let together = run_sweep(&d, &rates, &mut sweep, &mut []).unwrap();
        for (i, &lr) in rates.iter().enumerate() {
            let mut engine = CpuEngine::new(net.clone(), &set, CpuVariant::Fused).unwrap();
            let alone = descent(rule, lr, 25).run(&mut engine, &mut []).unwrap();
            assert_eq!(together.runs[i].history, alone.history, "{rule:?} run {i}");
            assert_eq!(
                together.runs[i].network.params(),
                alone.network.params(),
                "{rule:?} run {i}"
            );
        }
    }
}

/// The GPU's update pass (in f32) follows the CPU's for every rule, alone and in a sweep (one
/// pass for all runs, and the layered kernels' parked runs).
#[cfg(feature = "gpu")]
#[test]
fn the_gpu_takes_every_rule_as_the_cpu_does() {
    use downhill::gpu::{GpuEngine, GpuOptions, GpuSweep};
    let Some(ctx) = common::gpu() else { return };
    for (widths, layered) in [(&[2usize, 3, 1][..], false), (&[3, 5, 2], true)] {
        let (net, set) = random_case(widths, Activation::Relu, true, 700, 4);
        let options = GpuOptions {
            layered,
            ..GpuOptions::default()
        };
        for rule in rules() {
            let case = format!("{widths:?} layered={layered} {rule:?}");
            let d = descent(rule, 0.02, 30);
            let mut cpu = CpuEngine::new(net.clone(), &set, CpuVariant::Fused).unwrap();
            let want = d.run(&mut cpu, &mut []).unwrap();
            let mut gpu = GpuEngine::new(ctx.clone(), net.clone(), &set, options).unwrap();
            let got = d.run(&mut gpu, &mut []).unwrap();
            assert_eq!(got.history.len(), want.history.len(), "{case}");
            for (g, w) in got.history.iter().zip(&want.history) {
                assert!(
                    (g.loss - w.loss).abs() <= 1e-4 * w.loss,
                    "{case}: {g:?} vs {w:?}"
                );
            }
            for (g, w) in got.network.params().iter().zip(want.network.params()) {
                assert!(
                    (g - w).abs() <= 1e-3 * (1.0 + w.abs()),
                    "{case}: {g} vs {w}"
                );
            }
            // Two runs of a sweep: each as alone on the GPU.
            let rates = [0.02, 0.05];
            let mut sweep =
                GpuSweep::new(ctx.clone(), &[net.clone(), net.clone()], &set, options).unwrap();
            let together = run_sweep(&d, &rates, &mut sweep, &mut []).unwrap();
            let mut gpu = GpuEngine::new(ctx.clone(), net.clone(), &set, options).unwrap();
            let alone = descent(rule, 0.05, 30).run(&mut gpu, &mut []).unwrap();
            assert_eq!(together.runs[0].history, got.history, "{case}");
            assert_eq!(together.runs[1].history, alone.history, "{case}");
            assert_eq!(
                together.runs[1].network.params(),
                alone.network.params(),
                "{case}"
            );
        }
    }
}

/// Out-of-range constants, and a constant given to a rule that has none, exit 2 naming the
/// flag; a good rule trains and says so.
#[cfg(feature = "cli")]
#[test]
fn bad_rules_are_refused_by_flag() {
    let base = [
        "train", "--points", "300", "--steps", "5", "--device", "cpu",
    ];
    for (extra, flag) in [
        (
            &["--optimizer", "momentum", "--momentum", "-0.1"][..],
            "--momentum",
        ),
        (&["--optimizer", "adam", "--beta1", "1"], "--beta1"),
        (&["--optimizer", "adam", "--beta2", "-0.2"], "--beta2"),
        (&["--optimizer", "adam", "--eps", "0"], "--eps"),
        (&["--weight-decay", "-1"], "--weight-decay"),
        (&["--momentum", "0.5"], "--momentum"),
        (&["--optimizer", "nesterov", "--beta1", "0.5"], "--beta1"),
        (&["--lr-schedule", "step:0:0.5"], "--lr-schedule"),
        (&["--lr-schedule", "exp:-1"], "--lr-schedule"),
        (&["--lr-schedule", "linear"], "--lr-schedule"),
        (&["--lr-schedule", "step:10"], "--lr-schedule"),
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let out = common::downhill(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(flag), "{extra:?}: {err}");
    }
    let args: Vec<&str> = base
        .iter()
        .chain(&["--optimizer", "adam", "--lr", "0.01"])
        .copied()
        .collect();
    let out = common::downhill(&args);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("adam (betas 0.9, 0.999; eps 1e-8)"), "{text}");
    let json_args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
    let out = common::downhill(&json_args);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["optimizer"]["name"], "adam");
}

/// A rate schedule's rates go into the history, one per update, and the last row (no update)
/// leaves the column empty.
#[cfg(feature = "cli")]
#[test]
fn a_scheduled_history_records_each_rate() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("h.csv");
    let out = common::downhill(&[
        "train",
        "--points",
        "300",
        "--steps",
        "6",
        "--tol",
        "0",
        "--device",
        "cpu",
        "--lr",
        "0.4",
        "--lr-schedule",
        "step:2:0.5",
        "--history",
        history.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&history).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("step,loss,gradient_norm,learning_rate"));
    let rates: Vec<String> = lines
        .map(|l| l.rsplit(',').next().unwrap().to_string())
        .collect();
    let parsed: Vec<Option<f64>> = rates.iter().map(|r| r.parse().ok()).collect();
    assert_eq!(
        parsed,
        vec![
            Some(0.4),
            Some(0.4),
            Some(0.2),
            Some(0.2),
            Some(0.1),
            Some(0.1),
            None
        ],
        "{text}"
    );
}

/// An Adam run saved after 10 steps and continued with `--init` for 10 more ends exactly where
/// 20 uninterrupted steps end: the model file (version 2) carries the rule's moments and its
/// update count. Plain descent still writes version 1 files.
#[cfg(feature = "cli")]
#[test]
fn an_adam_run_resumed_with_init_continues_exactly() {
    let devices = common::devices();
    for device in devices {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        let train = |steps: &str, init: Option<&str>, out: &str| {
            let mut args = vec![
                "train",
                "--points",
                "3000",
                "--optimizer",
                "adam",
                "--lr",
                "0.02",
                "--tol",
                "0",
                "--device",
                device,
                "--steps",
                steps,
                "--out",
                out,
            ];
            // The shape comes from --layers, or from the model continued.
            match init {
                Some(init) => args.extend(["--init", init]),
                None => args.extend(["--layers", "2,5,1"]),
            }
            let out = common::downhill(&args);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let (whole, half, resumed) = (file("whole.json"), file("half.json"), file("resumed.json"));
        train("20", None, &whole);
        train("10", None, &half);
        train("10", Some(&half), &resumed);
        let text = std::fs::read_to_string(&half).unwrap();
        let saved: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(saved["version"], 2, "{device}");
        assert_eq!(saved["optimizer"]["rule"], "adam", "{device}");
        assert_eq!(saved["optimizer"]["updates"], 10, "{device}");
        let want = downhill::model_file::load(std::path::Path::new(&whole)).unwrap();
        let got = downhill::model_file::load(std::path::Path::new(&resumed)).unwrap();
        assert_eq!(got.params(), want.params(), "{device}");
    }
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("gd.json");
    let out = common::downhill(&[
        "train",
        "--points",
        "300",
        "--steps",
        "3",
        "--device",
        "cpu",
        "--out",
        plain.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plain).unwrap()).unwrap();
    assert_eq!(saved["version"], 1);
    assert!(saved.get("optimizer").is_none());
}

/// Data-parallel descent in one process: a [`SharedEngine`] over one share of the points,
/// its share sum adding the other share's evaluation at the same weights, takes the steps of
/// one engine over every point, for every rule (the sums in another order: within 1e-9 on
/// the f64 reference kernel).
#[test]
fn descent_over_two_shares_is_descent_over_all_points() {
    use downhill::cpu::SharedEngine;
    for (k, rule) in rules().into_iter().enumerate() {
        let (net, set) = random_case(&[2, 3, 1], Activation::Tanh, true, 301, k as u64);
        let (mine, other) = set.split(0.4, 7).unwrap();
        let mut kernel = CpuVariant::Reference.kernel();
        kernel.prepare(&net);
        let add_other = Box::new(move |sums: &mut [downhill::Evaluation], at: &[&Network]| {
            let more = kernel.evaluate(at[0], &other);
            sums[0].points += more.points;
            sums[0].sse += more.sse;
            for (g, m) in sums[0].sse_gradient.iter_mut().zip(&more.sse_gradient) {
                *g += m;
            }
            Ok(())
        });
        let share = CpuEngine::new(net.clone(), &mine, CpuVariant::Reference).unwrap();
        let mut shared = SharedEngine::new(Box::new(share), add_other).unwrap();
        let spread = descent(rule, 0.05, 30).run(&mut shared, &mut []).unwrap();
        let mut engine = CpuEngine::new(net.clone(), &set, CpuVariant::Reference).unwrap();
        let alone = descent(rule, 0.05, 30).run(&mut engine, &mut []).unwrap();
        assert_eq!(spread.history.len(), alone.history.len(), "{rule:?}");
        for (s, a) in spread.history.iter().zip(&alone.history) {
            assert!(
                (s.loss - a.loss).abs() <= 1e-9 * a.loss,
                "{rule:?}: {s:?} vs {a:?}"
            );
        }
        for (s, a) in spread.network.params().iter().zip(alone.network.params()) {
            assert!(
                (s - a).abs() <= 1e-9 * (1.0 + a.abs()),
                "{rule:?}: {s} vs {a}"
            );
        }
    }
}

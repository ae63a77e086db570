//! The GPU's one-pass sweep: every run of a sweep stepped by the same passes over the data
//! (each point read once for as many runs as the fused kernel has slots, further slots in
//! further rows of workgroups). A run of a sweep must take the steps it takes alone: the same
//! kernel text for each slot and the same order of additions give the same numbers, so on the
//! software adapter CI runs they are compared exactly; elsewhere within f32 rounding.

#![cfg(feature = "gpu")]

mod common;

use common::{random_case, sweep_descent as descent};
use downhill::gpu::{GpuContext, GpuEngine, GpuOptions, GpuSweep};
use downhill::sweep::{run_sweep, SweepEngine};
use downhill::{Activation, Dataset, Descent, Network, Outcome, StopReason};

/// `count` starting points around `net`, each moved by its own amount.
fn starts(net: &Network, count: usize) -> Vec<Network> {
    (0..count)
        .map(|i| {
            let mut moved = net.clone();
            let params: Vec<f64> = net
                .params()
                .iter()
                .enumerate()
                .map(|(k, p)| p * (1.0 + 0.03 * i as f64) - 0.01 * ((i + k) % 5) as f64)
                .collect();
            moved.set_params(&params).unwrap();
            moved
        })
        .collect()
}

/// The same run trained alone on its own engine.
fn alone(
    ctx: &GpuContext,
    start: &Network,
    set: &Dataset,
    d: &Descent,
    lr: f64,
    options: GpuOptions,
) -> Outcome {
    let mut engine = GpuEngine::new(ctx.clone(), start.clone(), set, options).unwrap();
    Descent {
        learning_rate: lr,
        ..d.clone()
    }
    .run(&mut engine, &mut [])
    .unwrap()
}

/// `got` against `want`: exactly on a software adapter, within f32 rounding elsewhere.
fn assert_same_run(got: &Outcome, want: &Outcome, exact: bool, case: &str) {
    assert_eq!(got.stopped, want.stopped, "{case}");
    assert_eq!(got.history.len(), want.history.len(), "{case}");
    if exact {
        assert_eq!(got.history, want.history, "{case}");
        assert_eq!(got.network.params(), want.network.params(), "{case}");
        assert_eq!(got.final_loss, want.final_loss, "{case}");
        return;
    }
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * b.abs().max(1e-6);
    for (g, w) in got.history.iter().zip(&want.history) {
        assert!(close(g.loss, w.loss), "{case}: {g:?} vs {w:?}");
    }
    for (g, w) in got.network.params().iter().zip(want.network.params()) {
        assert!(close(*g, w), "{case}: weight {g} vs {w}");
    }
}

/// Sweeps of 11 runs (more than the widest kernel's slots: two rows of workgroups, then
/// narrower kernels as runs finish), one of them diverging at once, against each run alone:
/// several shapes, relu and identity, with and without biases, around the workgroup (64
/// threads) and across data chunks.
#[test]
fn each_run_of_a_one_pass_gpu_sweep_is_the_run_alone() {
    let Some(ctx) = common::gpu() else { return };
    let exact = ctx.adapter.software;
    let shapes: &[(&[usize], Activation, bool)] = &[
        (&[2, 2, 1], Activation::Relu, true),
        (&[2, 2, 1], Activation::Identity, false),
        (&[1, 1], Activation::Identity, true),
        (&[2, 4, 1], Activation::Relu, true),
        (&[3, 5, 2], Activation::Relu, false),
    ];
    let chunked = GpuOptions {
        max_chunk_points: Some(1000),
        ..GpuOptions::default()
    };
    for (k, &(widths, hidden, bias)) in shapes.iter().enumerate() {
        for (points, options) in [
            (1, GpuOptions::default()),
            (63, GpuOptions::default()),
            (64, GpuOptions::default()),
            (65, GpuOptions::default()),
            (4097, chunked),
        ] {
            let (net, set) = random_case(widths, hidden, bias, points, k as u64);
            let nets = starts(&net, 11);
            let mut rates: Vec<f64> = (0..11).map(|i| 0.02 + 0.03 * i as f64).collect();
            rates[3] = 1e6;
            let d = descent(30);
            let mut sweep = GpuSweep::new(ctx.clone(), &nets, &set, options).unwrap();
            assert!(sweep.shares_passes());
            let together = run_sweep(&d, &rates, &mut sweep, &mut []).unwrap();
            // (At one point a relu network may have no gradient at all: flat at once.)
            if points > 1 {
                assert!(
                    matches!(together.runs[3].stopped, StopReason::Diverged { .. }),
                    "{:?}",
                    together.runs[3].stopped
                );
            }
            for (i, (start, &lr)) in nets.iter().zip(&rates).enumerate() {
                let case = format!("{widths:?} {hidden:?} bias={bias} n={points} run {i}");
                let want = alone(&ctx, start, &set, &d, lr, options);
                assert_same_run(&together.runs[i], &want, exact, &case);
            }
        }
    }
}

/// Both ways of summing and both places for the weights take sweeps too.
#[test]
fn every_kernel_form_takes_sweeps() {
    let Some(ctx) = common::gpu() else { return };
    let exact = ctx.adapter.software;
    let (net, set) = random_case(&[2, 3, 1], Activation::Relu, true, 700, 5);
    let nets = starts(&net, 5);
    let rates = [0.05, 0.1, 0.2, 0.3, 0.4];
    for options in [
        GpuOptions {
            workgroup_sums: true,
            ..GpuOptions::default()
        },
        GpuOptions {
            shared_weights: true,
            ..GpuOptions::default()
        },
    ] {
        let d = descent(20);
        let mut sweep = GpuSweep::new(ctx.clone(), &nets, &set, options).unwrap();
        let together = run_sweep(&d, &rates, &mut sweep, &mut []).unwrap();
        for (i, (start, &lr)) in nets.iter().zip(&rates).enumerate() {
            let want = alone(&ctx, start, &set, &d, lr, options);
            assert_same_run(
                &together.runs[i],
                &want,
                exact,
                &format!("{options:?} run {i}"),
            );
        }
    }
}

/// Over a thousand runs in one engine (129 rows of workgroups, a reduce pass over 1,030 runs):
/// every run trains, and runs at the start, middle and end of the list match themselves alone.
#[test]
fn a_sweep_of_over_a_thousand_runs_trains_every_run() {
    let Some(ctx) = common::gpu() else { return };
    let exact = ctx.adapter.software;
    let (net, set) = random_case(&[2, 2, 1], Activation::Relu, true, 130, 8);
    let runs = 1030;
    let nets = starts(&net, runs);
    let rates: Vec<f64> = (0..runs).map(|i| 0.001 * (1 + i % 97) as f64).collect();
    let d = descent(12);
    let mut sweep = GpuSweep::new(ctx.clone(), &nets, &set, GpuOptions::default()).unwrap();
    assert_eq!(sweep.runs(), runs);
    assert_eq!(sweep.passes_per_step(), runs.div_ceil(8));
    let together = run_sweep(&d, &rates, &mut sweep, &mut []).unwrap();
    assert_eq!(together.runs.len(), runs);
    for run in &together.runs {
        assert!(run.history.len() > 1 && run.final_loss.is_finite());
    }
    for i in [0, 7, 8, 515, runs - 1] {
        let want = alone(&ctx, &nets[i], &set, &d, rates[i], GpuOptions::default());
        assert_same_run(&together.runs[i], &want, exact, &format!("run {i}"));
    }
}

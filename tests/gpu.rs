//! The GPU path against the CPU reference: loss, gradient and predictions on seeded random
//! networks at awkward sizes and across chunk boundaries, the lesson's worked examples
//! (docs/LESSON.md), and
//! whole training runs.
//!
//! Every test looks for an adapter (software ones included) and, when there is none, says so
//! and returns; with `DOWNHILL_REQUIRE_GPU=1` (set by .ci/run) a missing adapter fails instead.
//!
//! Tolerance: the GPU computes in f32 with tree or subgroup reductions; against the f64 reference the SSE
//! and each gradient entry (relative to the gradient's norm) agree within 1e-4.

#![cfg(feature = "gpu")]

mod common;

use common::{assert_evaluations_agree, gpu, gradient_gap, random_case, EVERY_ACTIVATION};

use downhill::cpu::{CpuEngine, CpuKernel, CpuVariant, Reference};
use downhill::gpu::engine::predict;
use downhill::gpu::{GpuContext, GpuEngine, GpuOptions};
use downhill::{data, Activation, Dataset, Descent, Engine, Layer, LossKind, Network, StopReason};
use ndarray::{arr2, Array2};

const GPU_TOLERANCE: f64 = 1e-4;

const SHAPES: &[&[usize]] = &[
    &[1, 1],
    &[2, 2, 1],
    &[3, 1],
    &[2, 8, 8, 1],
    &[8, 16, 1],
    &[3, 5, 2],
];
const SIZES: &[usize] = &[1, 63, 64, 65, 1000, 4097];

/// The loss and gradient of `net` over `set` from a GPU engine built for them.
fn evaluate(
    ctx: GpuContext,
    net: &Network,
    set: &Dataset,
    options: GpuOptions,
) -> downhill::Result<downhill::Evaluation> {
    GpuEngine::new(ctx, net.clone(), set, options)?.evaluate()
}

fn compare(ctx: &GpuContext, options: GpuOptions, case: &str, net: &Network, set: &Dataset) {
    let want = Reference.evaluate(net, set);
    let got = evaluate(ctx.clone(), net, set, options).unwrap();
    assert_evaluations_agree(case, &got, &want, GPU_TOLERANCE);
}

#[test]
fn loss_and_gradient_match_the_reference_on_random_networks_at_awkward_sizes() {
    let Some(ctx) = gpu() else { return };
    let mut seed = 0;
    for widths in SHAPES {
        for hidden in EVERY_ACTIVATION {
            for bias in [true, false] {
                for &points in SIZES {
                    seed += 1;
                    let (net, set) = random_case(widths, hidden, bias, points, seed);
                    let case = format!("{widths:?} {hidden} bias={bias} n={points}");
                    compare(&ctx, GpuOptions::default(), &case, &net, &set);
                }
            }
        }
    }
}

#[test]
fn chunked_data_gives_the_same_loss_and_gradient() {
    let Some(ctx) = gpu() else { return };
    for (limit, points) in [(64, 65), (100, 1000), (1000, 4097), (4097, 4097), (333, 1)] {
        let (net, set) = random_case(&[2, 2, 1], Activation::Relu, true, points, limit as u64);
        let options = GpuOptions {
            max_chunk_points: Some(limit),
            ..GpuOptions::default()
        };
        let engine = GpuEngine::new(ctx.clone(), net.clone(), &set, options).unwrap();
        assert_eq!(engine.chunk_count(), points.div_ceil(limit));
        compare(
            &ctx,
            options,
            &format!("chunks of {limit}, n={points}"),
            &net,
            &set,
        );
    }
}

#[test]
fn predictions_match_the_reference_with_and_without_chunks() {
    let Some(ctx) = gpu() else { return };
    for (seed, widths) in SHAPES.iter().enumerate() {
        for (points, limit) in [(1, None), (65, Some(64)), (4097, None), (4097, Some(1000))] {
            let (net, set) = random_case(widths, Activation::Relu, true, points, seed as u64);
            let want = Reference.predict(&net, set.input_columns());
            let options = GpuOptions {
                max_chunk_points: limit,
                ..GpuOptions::default()
            };
            let got = predict(&ctx, &net, set.input_columns(), options).unwrap();
            assert_eq!(got.dim(), want.dim());
            for (g, w) in got.iter().zip(want.iter()) {
                assert!(
                    (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "{widths:?} n={points}: {g} vs {w}"
                );
            }
        }
    }
}

fn linear(rows: Array2<f64>) -> Network {
    Network::new(vec![Layer::new(rows, None, Activation::Identity).unwrap()]).unwrap()
}

fn one_point(row: &[f32], inputs: usize) -> Dataset {
    Dataset::from_rows(
        Array2::from_shape_vec((1, row.len()), row.to_vec())
            .unwrap()
            .view(),
        inputs,
    )
    .unwrap()
}

fn one_sse_step(ctx: &GpuContext, net: Network, set: &Dataset) -> (Network, f64) {
    let mut engine = GpuEngine::new(ctx.clone(), net, set, GpuOptions::default()).unwrap();
    let descent = Descent {
        learning_rate: 0.01,
        max_steps: 1,
        loss: LossKind::Sse,
        ..Descent::default()
    };
    let outcome = descent.run(&mut engine, &mut []).unwrap();
    (outcome.network, outcome.history[0].loss)
}

#[test]
fn seed_examples_hold_on_the_gpu() {
    let Some(ctx) = gpu() else { return };
    let close = |got: f64, want: f64, what: &str| {
        assert!((got - want).abs() <= 1e-6, "{what}: {got} vs {want}")
    };

    // A: the baseline predicts 9 for [2, 3]; the target 13 is missed by 4.
    let baseline = Network::lesson_baseline(Activation::Identity);
    let a = one_point(&[2.0, 3.0, 13.0], 2);
    close(
        f64::from(
            predict(&ctx, &baseline, a.input_columns(), GpuOptions::default()).unwrap()[(0, 0)],
        ),
        9.0,
        "A prediction",
    );
    close(
        evaluate(ctx.clone(), &baseline, &a, GpuOptions::default())
            .unwrap()
            .sse,
        16.0,
        "A squared error",
    );

    // B: squared errors 100, 25, 25: total 150, mean 50.
    let b = Dataset::from_rows(arr2(&[[10.0f32, 20.0], [8.0, 3.0], [6.0, 1.0]]).view(), 1).unwrap();
    let e = evaluate(
        ctx.clone(),
        &linear(arr2(&[[1.0]])),
        &b,
        GpuOptions::default(),
    )
    .unwrap();
    close(e.sse, 150.0, "B total");
    close(e.mse(), 50.0, "B mean");

    // C: slope -24, new weight 2.24.
    let c = one_point(&[3.0, 10.0], 1);
    let e = evaluate(
        ctx.clone(),
        &linear(arr2(&[[2.0]])),
        &c,
        GpuOptions::default(),
    )
    .unwrap();
    close(e.gradient(LossKind::Sse)[0], -24.0, "C slope");
    let (after, before) = one_sse_step(&ctx, linear(arr2(&[[2.0]])), &c);
    close(before, 16.0, "C loss");
    close(after.params()[0], 2.24, "C new weight");

    // D: slopes 30 and 40; new weights 0.7 and 1.6, prediction 8.5.
    let d = one_point(&[3.0, 4.0, 6.0], 2);
    let e = evaluate(
        ctx.clone(),
        &linear(arr2(&[[1.0, 2.0]])),
        &d,
        GpuOptions::default(),
    )
    .unwrap();
    close(e.gradient(LossKind::Sse)[0], 30.0, "D slope 0");
    close(e.gradient(LossKind::Sse)[1], 40.0, "D slope 1");
    let (after, _) = one_sse_step(&ctx, linear(arr2(&[[1.0, 2.0]])), &d);
    close(after.params()[0], 0.7, "D w0");
    close(after.params()[1], 1.6, "D w1");
    close(after.predict_one(&[3.0, 4.0])[0], 8.5, "D prediction");
}

#[test]
fn a_200_step_run_follows_the_cpu_run() {
    let Some(ctx) = gpu() else { return };
    let teacher = Network::lesson_baseline(Activation::Relu);
    let set = data::generate(&teacher, 20_000, 0.05, 2).unwrap();
    let student = Network::random(&[2, 2, 1], Activation::Relu, true, 6).unwrap();
    let descent = Descent {
        learning_rate: 0.3,
        max_steps: 200,
        ..Descent::default()
    };
    let options = GpuOptions {
        max_chunk_points: Some(7000),
        ..GpuOptions::default()
    };
    let mut gpu_engine = GpuEngine::new(ctx, student.clone(), &set, options).unwrap();
    let on_gpu = descent.run(&mut gpu_engine, &mut []).unwrap();
    let mut cpu_engine = CpuEngine::new(student, &set, CpuVariant::Fused).unwrap();
    let on_cpu = descent.run(&mut cpu_engine, &mut []).unwrap();
    assert_eq!(on_gpu.steps(), 200);
    assert_eq!(on_cpu.steps(), 200);
    for (g, c) in on_gpu.history.iter().zip(&on_cpu.history) {
        assert_eq!(g.step, c.step);
        assert!(
            downhill::verify::relative(g.loss, c.loss) <= downhill::verify::TOLERANCE,
            "step {}: {} vs {}",
            g.step,
            g.loss,
            c.loss
        );
    }
    let gap = downhill::verify::weight_deviation(&on_gpu.network, &on_cpu.network);
    assert!(
        gap <= downhill::verify::TOLERANCE,
        "weights differ by {gap:e}"
    );
    assert!(
        downhill::verify::relative(on_gpu.final_loss, on_cpu.final_loss)
            <= downhill::verify::TOLERANCE
    );
}

#[test]
fn stopping_rule_and_divergence_behave_as_on_the_cpu() {
    let Some(ctx) = gpu() else { return };
    let teacher = Network::lesson_baseline(Activation::Relu);
    let set = data::generate(&teacher, 3000, 0.05, 4).unwrap();
    let student = Network::random(&[2, 2, 1], Activation::Relu, true, 6).unwrap();
    let run = |engine: &mut dyn Engine, descent: &Descent| descent.run(engine, &mut []).unwrap();

    let flat = Descent {
        learning_rate: 0.3,
        max_steps: 5000,
        tolerance: 1e-2,
        ..Descent::default()
    };
    let g = run(
        &mut GpuEngine::new(ctx.clone(), student.clone(), &set, GpuOptions::default()).unwrap(),
        &flat,
    );
    let c = run(
        &mut CpuEngine::new(student.clone(), &set, CpuVariant::Fused).unwrap(),
        &flat,
    );
    assert!(
        matches!(g.stopped, StopReason::Flat { .. }),
        "{:?}",
        g.stopped
    );
    assert_eq!(g.steps(), c.steps());

    let wild = Descent {
        learning_rate: 50.0,
        max_steps: 500,
        loss: LossKind::Sse,
        ..Descent::default()
    };
    let g = run(
        &mut GpuEngine::new(ctx, student.clone(), &set, GpuOptions::default()).unwrap(),
        &wild,
    );
    let c = run(
        &mut CpuEngine::new(student, &set, CpuVariant::Fused).unwrap(),
        &wild,
    );
    let (StopReason::Diverged { step: gs, .. }, StopReason::Diverged { step: cs, .. }) =
        (g.stopped, c.stopped)
    else {
        panic!(
            "expected both to diverge: {:?} / {:?}",
            g.stopped, c.stopped
        )
    };
    assert_eq!(gs, cs);
    assert!(g.network.params().iter().all(|p| p.is_finite()));
    assert!(g.final_loss.is_finite());
}

#[test]
fn a_lost_device_ends_the_run_and_keeps_the_last_weights_read_back() {
    let Some(ctx) = gpu() else { return };
    let teacher = Network::lesson_baseline(Activation::Relu);
    let set = data::generate(&teacher, 2000, 0.05, 4).unwrap();
    let student = Network::random(&[2, 2, 1], Activation::Relu, true, 6).unwrap();
    let mut engine = GpuEngine::new(ctx.clone(), student, &set, GpuOptions::default()).unwrap();
    let descent = Descent {
        learning_rate: 0.3,
        max_steps: 10,
        ..Descent::default()
    };
    let before = descent.run(&mut engine, &mut []).unwrap();
    assert!(before.failure().is_none());

    ctx.device.destroy();
    let after = descent.run(&mut engine, &mut []).unwrap();
    assert_eq!(after.stopped, StopReason::Failed { step: 1 });
    let error = after.failure().expect("a failed run reports an error");
    assert_eq!(error.exit_code(), 1);
    assert!(error.to_string().contains("lost"), "{error}");
    assert_eq!(
        after.network, before.network,
        "the weights read back before the loss are kept"
    );
}

/// Every GPU allocation runs inside wgpu's validation and out-of-memory error scopes: a
/// buffer the adapter cannot give (here, one past its largest buffer size) is a clear GPU error
/// with exit code 1, not a panic or an abort.
#[test]
fn an_allocation_the_adapter_cannot_make_is_a_clear_gpu_error() {
    let Some(ctx) = gpu() else { return };
    let too_large = ctx.limits.max_buffer_size.saturating_add(1 << 20);
    let err = ctx
        .checked("allocating GPU buffers", || {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("too large"),
                size: too_large,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        })
        .map(drop)
        .unwrap_err();
    assert!(
        matches!(err, downhill::Error::Gpu(_))
            && err.to_string().contains("allocating GPU buffers"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 1);
}

/// The partial sums of every workgroup share one storage binding: with the binding limit
/// lowered, each chunk gets fewer workgroups (each taking more points) and the results stay
/// those of the reference; a limit too small for even one row per chunk is a clear error.
#[test]
fn partial_sums_respect_the_binding_limit() {
    let Some(ctx) = gpu() else { return };
    let (net, set) = random_case(&[3, 20, 20, 1], Activation::Relu, true, 60_000, 41);
    let pp = net.param_count() as u64 + 1;
    // Room for 3 rows of partials; data chunks of 8,000 points of 4 columns fit 128,000 bytes.
    let options = GpuOptions {
        max_binding_bytes: Some(128_000.max(3 * pp * 4)),
        ..GpuOptions::default()
    };
    let engine = GpuEngine::new(ctx.clone(), net.clone(), &set, options).unwrap();
    assert!(engine.chunk_count() > 1);
    assert!(u64::from(engine.workgroups()) * pp * 4 <= 128_000.max(3 * pp * 4));
    compare(&ctx, options, "binding limit lowered", &net, &set);
    let tiny = GpuOptions {
        max_binding_bytes: Some(pp * 4 - 4),
        ..GpuOptions::default()
    };
    match GpuEngine::new(ctx, net, &set, tiny) {
        Err(e) => assert!(e.to_string().contains("storage binding"), "{e}"),
        Ok(_) => panic!("a binding smaller than one row of partial sums cannot work"),
    }
}

/// Sizes past one workgroup's share of points (16,384 on a software adapter, 1,024 on a
/// hardware one): several workgroups per dispatch, their partial rows summed by the reduce pass.
#[test]
fn several_workgroups_per_dispatch_match_the_reference() {
    let Some(ctx) = gpu() else { return };
    for (points, seed) in [(16_385, 1), (40_000, 2), (70_001, 3)] {
        for widths in [&[2usize, 2, 1][..], &[3, 5, 2]] {
            let (net, set) = random_case(widths, Activation::Relu, true, points, seed);
            let engine =
                GpuEngine::new(ctx.clone(), net.clone(), &set, GpuOptions::default()).unwrap();
            assert!(
                engine.workgroups() > 1,
                "{points} points took one workgroup"
            );
            compare(
                &ctx,
                GpuOptions::default(),
                &format!("{widths:?} n={points}"),
                &net,
                &set,
            );
        }
    }
}

/// Once a run stops (flat) inside a submission, the fused pass skips the remaining steps'
/// work; the final evaluation after it must still see the whole data (the stop is cleared).
#[test]
fn evaluation_after_an_early_stop_reads_the_whole_data() {
    let Some(ctx) = gpu() else { return };
    let (net, set) = random_case(&[2, 2, 1], Activation::Relu, true, 5_000, 8);
    let mut engine = GpuEngine::new(ctx, net, &set, GpuOptions::default()).unwrap();
    let descent = Descent {
        learning_rate: 0.1,
        max_steps: 64,
        tolerance: 1e6, // flat at once
        round: Some(64),
        ..Descent::default()
    };
    let outcome = descent.run(&mut engine, &mut []).unwrap();
    assert!(matches!(outcome.stopped, StopReason::Flat { .. }));
    let want = Reference.evaluate(&outcome.network, &set);
    let got = engine.evaluate().unwrap();
    assert!(
        (got.sse - want.sse).abs() <= 1e-4 * want.sse,
        "{} vs {}",
        got.sse,
        want.sse
    );
}

/// One evaluator (data uploaded once, kernels built once) evaluates any number of weight sets
/// of its shape, each as the reference does; another shape is refused.
#[test]
fn one_evaluator_serves_many_weight_sets() {
    if gpu().is_none() {
        return;
    }
    let target = downhill::device::Target::resolve(downhill::DeviceChoice::Gpu).unwrap();
    let (net, set) = random_case(&[3, 5, 2], Activation::Relu, true, 3000, 12);
    let mut evaluator = target.evaluator(&net, &set).unwrap();
    assert!(matches!(evaluator, downhill::device::Evaluator::Gpu(_)));
    for k in 0..3 {
        let mut moved = net.clone();
        let params: Vec<f64> = net.params().iter().map(|p| p + 0.05 * k as f64).collect();
        moved.set_params(&params).unwrap();
        let want = Reference.evaluate(&moved, &set);
        let got = evaluator.evaluate(&moved).unwrap();
        assert!(
            (got.sse - want.sse).abs() <= GPU_TOLERANCE * want.sse,
            "set {k}"
        );
        assert!(gradient_gap(&got.sse_gradient, &want.sse_gradient) <= GPU_TOLERANCE);
    }
    let other = Network::random(&[3, 4, 2], Activation::Relu, true, 1).unwrap();
    assert!(evaluator.evaluate(&other).is_err());
}

/// The landscape's many-vector kernel cuts the data as the engine does (`gpu/chunks.rs`): with
/// chunks of 1, 64 or 1000 points it gives every vector's reference SSE.
#[test]
fn the_landscape_kernel_matches_the_reference_on_chunked_data() {
    let Some(ctx) = gpu() else {
        return;
    };
    let (net, set) = random_case(&[3, 5, 2], Activation::Relu, true, 1001, 14);
    let nets: Vec<Network> = (0..5)
        .map(|k| {
            let mut moved = net.clone();
            let params: Vec<f64> = net.params().iter().map(|p| p - 0.1 * k as f64).collect();
            moved.set_params(&params).unwrap();
            moved
        })
        .collect();
    for limit in [Some(1), Some(64), Some(1000), None] {
        let options = GpuOptions {
            max_chunk_points: limit,
            ..GpuOptions::default()
        };
        let many = downhill::gpu::landscape::SseOfMany::new(&ctx, &net, &set, options).unwrap();
        for (got, moved) in many.sse(&nets).unwrap().iter().zip(&nets) {
            let want = Reference.evaluate(moved, &set).sse;
            assert!(
                (got - want).abs() <= GPU_TOLERANCE * want,
                "chunks of {limit:?}: {got} vs {want}"
            );
        }
    }
}

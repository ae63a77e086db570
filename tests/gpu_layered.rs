//! The GPU's layered kernels (for networks too wide for the per-point kernel, and forced on
//! narrow ones with `GpuOptions::layered`) against the f64 reference: the loss and gradient on
//! seeded random networks of wide, deep and many-output shapes, relu and identity, with and
//! without biases, at awkward sizes, over several batches and several data chunks; and a
//! descent that follows the CPU's. Skipped without an adapter (`DOWNHILL_REQUIRE_GPU=1`
//! makes that a failure).

#![cfg(feature = "gpu")]

mod common;

use common::{assert_evaluations_agree, gpu, gradient_gap, random_case};
use downhill::cpu::{CpuEngine, CpuKernel, CpuVariant, Reference};
use downhill::gpu::engine::predict;
use downhill::gpu::{GpuContext, GpuEngine, GpuOptions};
use downhill::{Activation, Descent, Engine, Layer};

/// f32 sums over batches of up to 8,192 points against f64: the same tolerance as the
/// per-point kernel's tests.
const TOLERANCE: f64 = 1e-4;

const LAYERED: GpuOptions = GpuOptions {
    max_chunk_points: None,
    max_binding_bytes: None,
    layered: true,
    workgroup_sums: false,
    shared_weights: false,
};

/// The loss and gradient of a layered GPU engine match the reference's.
fn check(
    ctx: &GpuContext,
    widths: &[usize],
    hidden: Activation,
    bias: bool,
    points: usize,
    options: GpuOptions,
) {
    let case = format!("{widths:?} {hidden:?} bias={bias} n={points} {options:?}");
    let (net, set) = random_case(widths, hidden, bias, points, widths.len() as u64 + 3);
    let want = Reference.evaluate(&net, &set);
    let mut engine = GpuEngine::new(ctx.clone(), net, &set, options).unwrap();
    assert!(engine.is_layered(), "{case}");
    let got = engine.evaluate().unwrap();
    // The loss alone (the landscape's forward-only pass) is the same SSE.
    let loss_only = engine.sse().unwrap();
    assert!(
        (loss_only - want.sse).abs() <= TOLERANCE * want.sse.max(1e-12),
        "{case}: forward-only sse {loss_only} vs {}",
        want.sse
    );
    assert_evaluations_agree(&case, &got, &want, TOLERANCE);
}

fn deep() -> Vec<usize> {
    std::iter::once(4)
        .chain(std::iter::repeat_n(32, 10))
        .chain(std::iter::once(1))
        .collect()
}

#[test]
fn wide_deep_and_many_output_networks_match_the_reference() {
    let Some(ctx) = gpu() else {
        return;
    };
    let deep = deep();
    let shapes: [&[usize]; 6] = [
        &[8, 64, 64, 1],
        &[3, 300, 1],
        &[2, 1000, 1],
        &deep,
        &[64, 1],
        &[5, 20, 3],
    ];
    for (k, widths) in shapes.into_iter().enumerate() {
        // Each shape with two of the eight activation and bias combinations, in turn.
        let combos = [
            (Activation::Relu, true),
            (Activation::Identity, false),
            (Activation::Tanh, true),
            (Activation::Sigmoid, false),
            (Activation::Relu, false),
            (Activation::Identity, true),
            (Activation::Tanh, false),
            (Activation::Sigmoid, true),
        ];
        for &(hidden, bias) in combos.iter().skip(k % 4 * 2).take(2) {
            for points in [1, 63, 64, 65, 4097] {
                check(&ctx, widths, hidden, bias, points, LAYERED);
            }
        }
    }
}

#[test]
fn the_widest_lesson_shape_matches_the_reference() {
    let Some(ctx) = gpu() else {
        return;
    };
    for points in [1, 300] {
        check(
            &ctx,
            &[16, 256, 256, 1],
            Activation::Relu,
            true,
            points,
            LAYERED,
        );
    }
}

/// Several batches per chunk (8,192 points each at most) and several chunks.
#[test]
fn batches_and_chunks_add_up_to_the_whole_data() {
    let Some(ctx) = gpu() else {
        return;
    };
    for limit in [None, Some(5000), Some(64)] {
        let options = GpuOptions {
            max_chunk_points: limit,
            ..LAYERED
        };
        check(
            &ctx,
            &[8, 64, 64, 1],
            Activation::Relu,
            true,
            20_000,
            options,
        );
    }
}

/// Networks beyond the per-point kernel take the layered kernels without being told.
#[test]
fn networks_too_wide_for_the_per_point_kernel_take_the_layered_kernels() {
    let Some(ctx) = gpu() else {
        return;
    };
    let (net, set) = random_case(&[8, 64, 64, 1], Activation::Relu, true, 100, 1);
    let engine = GpuEngine::new(ctx.clone(), net, &set, GpuOptions::default()).unwrap();
    assert!(engine.is_layered());
    let (narrow, set) = random_case(&[2, 2, 1], Activation::Relu, true, 100, 1);
    let engine = GpuEngine::new(ctx, narrow, &set, GpuOptions::default()).unwrap();
    assert!(!engine.is_layered());
}

/// Thirty steps of 8-64-64-1 on the GPU follow the fused CPU kernel's steps.
#[test]
fn a_descent_of_a_wide_network_follows_the_cpu() {
    let Some(ctx) = gpu() else {
        return;
    };
    let (net, set) = random_case(&[8, 64, 64, 1], Activation::Relu, true, 3000, 5);
    let descent = Descent {
        learning_rate: 0.01,
        max_steps: 30,
        tolerance: 0.0,
        ..Descent::default()
    };
    let mut gpu_engine = GpuEngine::new(ctx, net.clone(), &set, GpuOptions::default()).unwrap();
    let on_gpu = descent.run(&mut gpu_engine, &mut []).unwrap();
    let mut cpu_engine = CpuEngine::new(net, &set, CpuVariant::Fused).unwrap();
    let on_cpu = descent.run(&mut cpu_engine, &mut []).unwrap();
    assert_eq!(on_gpu.history.len(), on_cpu.history.len());
    for (g, c) in on_gpu.history.iter().zip(&on_cpu.history) {
        assert!(
            (g.loss - c.loss).abs() <= 1e-3 * c.loss,
            "step {}: {} vs {}",
            g.step,
            g.loss,
            c.loss
        );
    }
    assert!(on_gpu.final_loss < on_gpu.history[0].loss);
    assert!(gpu_engine.device().starts_with("gpu"));
}

/// Predictions through the layered kernels' forward pass match the reference's, within one
/// batch, over several batches (8,192 points each at most) and over several chunks.
#[test]
fn layered_predictions_match_the_reference() {
    let Some(ctx) = gpu() else {
        return;
    };
    for widths in [&[8usize, 64, 64, 1][..], &[5, 20, 3], &[3, 300, 1]] {
        for (points, limit) in [(1, None), (65, None), (9000, None), (9000, Some(2500))] {
            let (net, set) = random_case(widths, Activation::Relu, true, points, 9);
            let options = GpuOptions {
                max_chunk_points: limit,
                ..LAYERED
            };
            let want = Reference.predict(&net, set.input_columns());
            let got = predict(&ctx, &net, set.input_columns(), options).unwrap();
            assert_eq!(got.dim(), want.dim());
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "{widths:?} n={points} {limit:?}: {g} vs {w}"
                );
            }
        }
    }
}

/// The issue's own check: `train --device gpu --layers 8,64,64,1 --verify` trains on the GPU's
/// layered kernels and verifies every round against the fused CPU kernel.
#[cfg(feature = "cli")]
#[test]
fn a_verified_run_of_a_wide_network_passes() {
    if gpu().is_none() {
        return;
    }
    let out = common::downhill(&[
        "train",
        "--device",
        "gpu",
        "--layers",
        "8,64,64,1",
        "--verify",
        "--points",
        "2000",
        "--steps",
        "20",
        "--lr",
        "0.01",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("device gpu"), "{stdout}");
    assert!(
        stdout.contains("verify: 20 steps compared") && stdout.contains("passed"),
        "{stdout}"
    );
}

/// The cases the shapes above leave out: layers whose widths are not multiples of 4 (the
/// forward and backward kernels take 4 nodes per thread), a ReLU output layer, batches inside
/// later chunks, and batches made smaller by a lowered binding limit.
#[test]
fn odd_widths_relu_outputs_and_smaller_batches_match_the_reference() {
    let Some(ctx) = gpu() else {
        return;
    };
    for widths in [&[2usize, 3, 1][..], &[8, 30, 5], &[3, 7, 6, 2]] {
        for points in [5, 4097] {
            check(&ctx, widths, Activation::Relu, true, points, LAYERED);
        }
    }
    // Two chunks of 10,000 points, each in two batches.
    let options = GpuOptions {
        max_chunk_points: Some(10_000),
        ..LAYERED
    };
    check(&ctx, &[8, 30, 5], Activation::Relu, false, 20_000, options);
    // A binding of 1,000 points' activations: batches of 1,000 points.
    let nodes = 8 + 30 + 5;
    let options = GpuOptions {
        max_binding_bytes: Some((nodes as u64 + 1) * 4 * 1000),
        ..LAYERED
    };
    check(&ctx, &[8, 30, 5], Activation::Identity, true, 4500, options);

    // A ReLU output layer: its slope masks the output errors.
    let (mut net, set) = random_case(&[3, 9, 2], Activation::Relu, true, 700, 4);
    let layers: Vec<Layer> = net
        .layers()
        .iter()
        .enumerate()
        .map(|(l, layer)| {
            let activation = if l == 1 {
                Activation::Relu
            } else {
                layer.activation
            };
            Layer::new(layer.weights.clone(), layer.bias.clone(), activation).unwrap()
        })
        .collect();
    net = downhill::Network::new(layers).unwrap();
    let want = Reference.evaluate(&net, &set);
    let mut engine = GpuEngine::new(ctx, net, &set, LAYERED).unwrap();
    let got = engine.evaluate().unwrap();
    assert!((got.sse - want.sse).abs() <= TOLERANCE * want.sse);
    assert!(gradient_gap(&got.sse_gradient, &want.sse_gradient) <= TOLERANCE);
}

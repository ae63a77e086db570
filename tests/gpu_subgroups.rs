//! Both ways the kernels sum within a workgroup: with subgroup operations (`subgroupAdd`,
//! where the adapter has wgpu's SUBGROUP feature, as lavapipe does with subgroups of 8) and
//! through workgroup memory (every adapter; `GpuOptions::workgroup_sums` forces it). Each
//! is checked against the f64 reference for the fused pass and its reduction, the update's
//! gradient norm, the layered kernels' SSE, the landscape and the read-only yardstick, at the
//! awkward sizes and across chunks. Tolerance as in tests/gpu.rs.

#![cfg(feature = "gpu")]

mod common;

use common::{assert_evaluations_agree, gpu, random_case};

use downhill::cpu::{CpuEngine, CpuKernel, CpuVariant, Reference};
use downhill::gpu::shaders::Reduction;
use downhill::gpu::{GpuContext, GpuEngine, GpuOptions};
use downhill::{Activation, Descent, Engine, Network};

const TOLERANCE: f64 = 1e-4;

/// The two ways, as options: the adapter's choice, then workgroup memory forced.
fn both_ways(ctx: &GpuContext, base: GpuOptions) -> Vec<(Reduction, GpuOptions)> {
    let chosen = if ctx.subgroups {
        Reduction::Subgroups
    } else {
        Reduction::Workgroup
    };
    vec![
        (chosen, base),
        (
            Reduction::Workgroup,
            GpuOptions {
                workgroup_sums: true,
                ..base
            },
        ),
    ]
}

#[test]
fn the_kernels_sum_with_subgroups_where_the_adapter_has_them() {
    let Some(ctx) = gpu() else { return };
    assert_eq!(ctx.subgroups, ctx.adapter.subgroup_sizes.is_some());
    // CI's adapter has them, so CI runs both ways.
    if ctx.adapter.name.contains("llvmpipe") {
        assert!(ctx.subgroups, "lavapipe offers subgroup operations");
    }
    let (net, set) = random_case(&[2, 2, 1], Activation::Relu, true, 100, 1);
    for (want, options) in both_ways(&ctx, GpuOptions::default()) {
        let engine = GpuEngine::new(ctx.clone(), net.clone(), &set, options).unwrap();
        assert_eq!(engine.reduction(), want, "{options:?}");
    }
}

#[test]
fn both_ways_give_the_reference_loss_and_gradient() {
    let Some(ctx) = gpu() else { return };
    let cases: &[(&[usize], bool, &[usize])] = &[
        (&[2, 2, 1], false, &[1, 63, 64, 65, 4097]),
        (&[3, 5, 2], false, &[1, 65, 4097]),
        (&[8, 64, 64, 1], true, &[1, 65, 4097]),
        (&[3, 5, 2], true, &[63, 4097]),
    ];
    for &(widths, layered, sizes) in cases {
        for &points in sizes {
            for chunk in [None, Some(1000)] {
                let base = GpuOptions {
                    layered,
                    max_chunk_points: chunk,
                    ..GpuOptions::default()
                };
                let (net, set) = random_case(widths, Activation::Relu, true, points, 7);
                let want = Reference.evaluate(&net, &set);
                for (way, options) in both_ways(&ctx, base) {
                    let case = format!("{widths:?} n={points} {way:?} {options:?}");
                    let mut engine = GpuEngine::new(ctx.clone(), net.clone(), &set, options)
                        .unwrap_or_else(|e| panic!("{case}: {e}"));
                    let got = engine.evaluate().unwrap();
                    assert_evaluations_agree(&case, &got, &want, TOLERANCE);
                }
            }
        }
    }
}

/// The update kernel sums the gradient's squares for its norm: forty steps each way follow
/// the CPU's losses and norms.
#[test]
fn both_ways_descend_as_the_cpu_does() {
    let Some(ctx) = gpu() else { return };
    let (net, set) = random_case(&[2, 8, 8, 1], Activation::Relu, true, 2000, 3);
    let descent = Descent {
        learning_rate: 0.01,
        max_steps: 40,
        tolerance: 0.0,
        ..Descent::default()
    };
    let mut cpu = CpuEngine::new(net.clone(), &set, CpuVariant::Fused).unwrap();
    let on_cpu = descent.run(&mut cpu, &mut []).unwrap();
    for (way, options) in both_ways(&ctx, GpuOptions::default()) {
        let mut engine = GpuEngine::new(ctx.clone(), net.clone(), &set, options).unwrap();
        let on_gpu = descent.run(&mut engine, &mut []).unwrap();
        assert_eq!(on_gpu.history.len(), on_cpu.history.len(), "{way:?}");
        for (g, c) in on_gpu.history.iter().zip(&on_cpu.history) {
            assert!(
                (g.loss - c.loss).abs() <= 1e-3 * c.loss
                    && (g.gradient_norm - c.gradient_norm).abs() <= 1e-3 * c.gradient_norm,
                "{way:?} step {}: loss {} vs {}, norm {} vs {}",
                g.step,
                g.loss,
                c.loss,
                g.gradient_norm,
                c.gradient_norm
            );
        }
    }
}

#[test]
fn both_ways_give_the_landscape_and_the_yardstick() {
    let Some(ctx) = gpu() else { return };
    let (net, set) = random_case(&[3, 5, 2], Activation::Relu, true, 1001, 14);
    let nets: Vec<Network> = (0..3)
        .map(|k| {
            let mut moved = net.clone();
            let params: Vec<f64> = net.params().iter().map(|p| p + 0.05 * k as f64).collect();
            moved.set_params(&params).unwrap();
            moved
        })
        .collect();
    let total: f64 = set.columns().iter().map(|&v| f64::from(v)).sum();
    let magnitude: f64 = set.columns().iter().map(|&v| f64::from(v.abs())).sum();
    for chunk in [None, Some(64)] {
        let base = GpuOptions {
            max_chunk_points: chunk,
            ..GpuOptions::default()
        };
        for (way, options) in both_ways(&ctx, base) {
            let many = downhill::gpu::landscape::SseOfMany::new(&ctx, &net, &set, options).unwrap();
            for (got, moved) in many.sse(&nets).unwrap().iter().zip(&nets) {
                let want = Reference.evaluate(moved, &set).sse;
                assert!(
                    (got - want).abs() <= TOLERANCE * want,
                    "{way:?} {chunk:?}: {got} vs {want}"
                );
            }
            let probe = downhill::gpu::probe::ReadOnce::new(ctx.clone(), &set, options).unwrap();
            let sum = probe.sum().unwrap();
            assert!(
                (sum - total).abs() <= 1e-4 * magnitude,
                "{way:?} {chunk:?}: {sum} vs {total}"
            );
        }
    }
}

/// The per-point kernels read the weights from registers on a software adapter and from
/// workgroup memory on hardware ones above 64 parameters; `GpuOptions::shared_weights` runs
/// the hardware form here too: loss, gradient, predictions and the landscape against the
/// reference, both ways of summing.
#[test]
fn the_weights_read_from_workgroup_memory_give_the_reference_too() {
    use downhill::gpu::engine::predict;
    let Some(ctx) = gpu() else { return };
    for (widths, points) in [
        (&[2usize, 2, 1][..], 65),
        (&[2, 8, 8, 1], 4097),
        (&[8, 16, 1], 63),
    ] {
        let (net, set) = random_case(widths, Activation::Relu, true, points, 21);
        let want = Reference.evaluate(&net, &set);
        let base = GpuOptions {
            shared_weights: true,
            ..GpuOptions::default()
        };
        for (way, options) in both_ways(&ctx, base) {
            let case = format!("{widths:?} n={points} {way:?} shared weights");
            let mut engine = GpuEngine::new(ctx.clone(), net.clone(), &set, options).unwrap();
            assert_evaluations_agree(&case, &engine.evaluate().unwrap(), &want, TOLERANCE);
            let many = downhill::gpu::landscape::SseOfMany::new(&ctx, &net, &set, options).unwrap();
            let got = many.sse(std::slice::from_ref(&net)).unwrap()[0];
            assert!(
                (got - want.sse).abs() <= TOLERANCE * want.sse,
                "{case}: {got} vs {}",
                want.sse
            );
        }
        let got = predict(&ctx, &net, set.input_columns(), base).unwrap();
        let expected = Reference.predict(&net, set.input_columns());
        for (g, w) in got.iter().zip(expected.iter()) {
            assert!(
                (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "{widths:?}: {g} vs {w}"
            );
        }
    }
}

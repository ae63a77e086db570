//! Times a training step of each GPU kernel family on the shapes both can take: the per-point
//! kernel (one thread per point, every activation and gradient sum in its registers) and the
//! layered kernels (a batch of points a layer at a time, gradients as tiled products). The
//! engine picks the per-point kernel wherever it takes the shape; this table is the
//! measurement behind that choice (BENCHMARKS.md, "Issue 12"), and scripts/gpu_report.sh
//! prints it for a hardware GPU.
//!
//!     cargo run --release --example gpu_crossover -- [points] [steps]
//!
//! Defaults: 100,000 points, 5 steps per timing, the best of 3 timings.

use std::time::Instant;

use downhill::descent::StepRule;
use downhill::gpu::{AdapterChoice, GpuContext, GpuEngine, GpuOptions};
use downhill::{data, Activation, Engine, LossKind, Network};

/// Narrow to as wide as the per-point kernel goes (1,024 parameters, 256 nodes).
const SHAPES: &[&[usize]] = &[
    &[2, 2, 1],
    &[2, 8, 8, 1],
    &[3, 5, 2],
    &[8, 16, 1],
    &[8, 16, 16, 1],
    &[16, 32, 1],
    &[8, 24, 24, 1],
];

fn main() -> downhill::Result<()> {
    let mut args = std::env::args().skip(1);
    let points: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let steps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let Some(ctx) = GpuContext::open(AdapterChoice::Any)? else {
        eprintln!("no GPU adapter");
        std::process::exit(2);
    };
    println!(
        "{} , {points} points, ms per step (best of 3 timings of {steps} steps)",
        ctx.adapter.name
    );
    println!(
        "{:<12} {:>7} {:>12} {:>12} {:>8}",
        "shape", "params", "per-point", "layered", "ratio"
    );
    for widths in SHAPES {
        let net = Network::random(widths, Activation::Relu, true, 1)?;
        let teacher = Network::random(widths, Activation::Relu, true, 2)?;
        let set = data::generate(&teacher, points, 0.1, 3)?;
        let per_point = time(&ctx, &net, &set, false, steps)?;
        let layered = time(&ctx, &net, &set, true, steps)?;
        println!(
            "{:<12} {:>7} {:>12.2} {:>12.2} {:>7.1}x",
            widths
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("-"),
            net.param_count(),
            per_point,
            layered,
            layered / per_point
        );
    }
    Ok(())
}

/// The best of three timings of `steps` steps, after one untimed round (compiling the kernels).
fn time(
    ctx: &GpuContext,
    net: &Network,
    set: &downhill::Dataset,
    layered: bool,
    steps: usize,
) -> downhill::Result<f64> {
    let options = GpuOptions {
        layered,
        ..GpuOptions::default()
    };
    let mut engine = GpuEngine::new(ctx.clone(), net.clone(), set, options)?;
    let rule = StepRule {
        learning_rate: 1e-4,
        loss: LossKind::Mse,
        tolerance: 0.0,
        divergence_limit: f64::INFINITY,
        update: Default::default(),
    };
    let mut best = f64::INFINITY;
    for round in 0..4 {
        let start = Instant::now();
        engine.run_steps(1 + round * steps, steps, &rule)?;
        let ms = start.elapsed().as_secs_f64() * 1e3 / steps as f64;
        if round > 0 {
            best = best.min(ms);
        }
    }
    Ok(best)
}

//! Where a mini-batch epoch's time goes on the CPU: drawing the permutation, gathering the
//! batches, and the steps' evaluations. `cargo run --release --example batch_parts`.
use std::time::Instant;

use downhill::batches::BatchPlan;
use downhill::cpu::{CpuKernel, Fused};
use downhill::{data, Activation, Network};

fn main() {
    for (widths, points) in [(vec![2, 2, 1], 1_000_000), (vec![8, 64, 64, 1], 100_000)] {
        let teacher = Network::random(&widths, Activation::Relu, true, 1).unwrap();
        let data = data::generate(&teacher, points, 0.05, 1).unwrap();
        let mut kernel = Fused::default();
        kernel.prepare(&teacher);
        for size in [4096, 256] {
            let plan = BatchPlan::new(points, size, 1).unwrap();
            let t = Instant::now();
            let order = plan.permutation(1);
            let permute = t.elapsed();
            let mut batches = Vec::new();
            plan.gather(&data, 0, &mut batches).unwrap();
            let t = Instant::now();
            plan.gather(&data, 1, &mut batches).unwrap();
            let gather = t.elapsed() - permute;
            let t = Instant::now();
            for batch in &batches {
                std::hint::black_box(kernel.evaluate(&teacher, batch));
            }
            let steps = t.elapsed();
            let t = Instant::now();
            std::hint::black_box(kernel.evaluate(&teacher, &data));
            let full = t.elapsed();
            println!(
                "{widths:?} {points} batch {size}: permutation {:.2} ms, gather {:.2} ms, \
                 {} evaluations {:.2} ms; one full evaluation {:.2} ms ({})",
                permute.as_secs_f64() * 1e3,
                gather.as_secs_f64() * 1e3,
                batches.len(),
                steps.as_secs_f64() * 1e3,
                full.as_secs_f64() * 1e3,
                order.len()
            );
        }
    }
}

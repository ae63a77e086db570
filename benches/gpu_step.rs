//! Training steps of the lesson's 2-2-1 network (with biases) on the GPU path at 1M and 10M
//! points, next to the fused CPU path. Each measured iteration runs `STEPS` steps in one
//! submission, as training does; throughput is bytes of data read per iteration.
//!
//! `cargo bench --bench gpu_step`; without an adapter it says so and measures nothing.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use downhill::cpu::{CpuEngine, CpuVariant};
use downhill::descent::StepRule;
use downhill::gpu::{AdapterChoice, GpuContext, GpuEngine, GpuOptions};
use downhill::{data, Activation, Engine, LossKind, Network};

const STEPS: usize = 4;

fn steps(c: &mut Criterion) {
    let Some(ctx) = GpuContext::open(AdapterChoice::Any).expect("opening an adapter works") else {
        eprintln!("no GPU adapter: nothing to measure");
        return;
    };
    let teacher = Network::lesson_baseline(Activation::Relu);
    let student = Network::random(&[2, 2, 1], Activation::Relu, true, 6).expect("valid widths");
    // A tiny learning rate and no stopping rule: every iteration runs all its steps.
    let rule = StepRule {
        learning_rate: 1e-6,
        loss: LossKind::Mse,
        tolerance: 0.0,
        divergence_limit: f64::INFINITY,
        update: Default::default(),
    };
    let mut group = c.benchmark_group(format!("train_{STEPS}_steps_2-2-1"));
    group.sample_size(10);
    for points in [1_000_000usize, 10_000_000] {
        let set = data::generate(&teacher, points, 0.05, 1).expect("valid settings");
        group.throughput(Throughput::Bytes((set.bytes() * STEPS) as u64));
        let mut gpu = GpuEngine::new(ctx.clone(), student.clone(), &set, GpuOptions::default())
            .expect("the GPU engine starts");
        let name = format!("gpu ({})", gpu.adapter_name());
        group.bench_function(BenchmarkId::new(name, points), |b| {
            b.iter(|| gpu.run_steps(1, STEPS, &rule).expect("GPU steps run"))
        });
        let mut cpu = CpuEngine::new(student.clone(), &set, CpuVariant::Fused).expect("valid data");
        group.bench_function(BenchmarkId::new("cpu fused", points), |b| {
            b.iter(|| cpu.run_steps(1, STEPS, &rule).expect("CPU steps run"))
        });
    }
    group.finish();
}

criterion_group!(benches, steps);
criterion_main!(benches);

//! One CPU training step (loss and gradient over every point) of the lesson's 2-2-1 network
//! with biases, fused vs reference, at 1M and 10M points; next to it the time to merely read
//! the same data once (the memory-bandwidth floor of a step). And the arithmetic-bound
//! 8-64-64-1 network at 100k points (throughput in flops: elements = operations).
//!
//! `cargo bench --bench cpu_step`; the figures go to BENCHMARKS.md. Throughput is reported
//! in bytes of data read per step (12 bytes per point for 2-2-1: three f32 columns).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use downhill::cpu::{probe, CpuVariant};
use downhill::{data, Activation, Network};

fn step(c: &mut Criterion) {
    let teacher = Network::lesson_baseline(Activation::Relu);
    let student = Network::random(&[2, 2, 1], Activation::Relu, true, 6).expect("valid widths");
    let mut group = c.benchmark_group("cpu_step_2-2-1");
    group.sample_size(10);
    for points in [1_000_000usize, 10_000_000] {
        let set = data::generate(&teacher, points, 0.05, 1).expect("valid settings");
        group.throughput(Throughput::Bytes(set.bytes() as u64));
        group.bench_with_input(BenchmarkId::new("read_once", points), &set, |b, set| {
            b.iter(|| probe::read_once(set))
        });
        for variant in [CpuVariant::Fused, CpuVariant::Reference] {
            let mut kernel = variant.kernel();
            group.bench_with_input(BenchmarkId::new(kernel.name(), points), &set, |b, set| {
                b.iter(|| kernel.evaluate(&student, set))
            });
        }
    }
    group.finish();
}

/// The arithmetic-bound workload: 8-64-64-1 at 100k points (about 2.6 GFLOP per step).
fn wide_step(c: &mut Criterion) {
    let teacher = Network::random(&[8, 64, 64, 1], Activation::Relu, true, 1).expect("valid");
    let student = Network::random(&[8, 64, 64, 1], Activation::Relu, true, 2).expect("valid");
    let mut group = c.benchmark_group("cpu_step_8-64-64-1");
    group.sample_size(10);
    let points = 100_000usize;
    let set = data::generate(&teacher, points, 0.05, 1).expect("valid settings");
    group.throughput(Throughput::Elements(
        (student.step_flops_per_point() * points) as u64,
    ));
    for variant in [CpuVariant::Fused, CpuVariant::Reference] {
        let mut kernel = variant.kernel();
        group.bench_with_input(BenchmarkId::new(kernel.name(), points), &set, |b, set| {
            b.iter(|| kernel.evaluate(&student, set))
        });
    }
    group.finish();
}

criterion_group!(benches, step, wide_step);
criterion_main!(benches);

use downhill::cpu::{CpuKernel, Fused};
use downhill::{data, Activation, Network};
fn main() {
    let teacher = Network::random(&[8, 64, 64, 1], Activation::Relu, true, 1).unwrap();
    let set = data::generate(&teacher, 1_000_000, 0.05, 1).unwrap();
    let student = Network::random(&[8, 64, 64, 1], Activation::Relu, true, 2).unwrap();
    let mut k = Fused::default();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        std::hint::black_box(k.evaluate(&student, &set));
        best = best.min(t.elapsed().as_secs_f64());
    }
    let flops = 26_008.0 * 1_000_000.0;
    println!(
        "best {:.2} ms, {:.1} GFLOP/s",
        best * 1e3,
        flops / best / 1e9
    );
}

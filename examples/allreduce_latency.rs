//! The all-reduce a data-parallel step takes, timed: the sum of P + 1 f64 values (a network's
//! gradient and its loss) over every process, for the lesson's 2-2-1 (P = 9), 8-64-64-1
//! (P = 4,801) and a network of 70,000 weights. Run under a launcher:
//!
//!     cargo build --release --features mpi --example allreduce_latency
//!     mpirun -np 2 target/release/examples/allreduce_latency
use std::time::Instant;

use downhill::distributed::World;

fn main() {
    let Some(world) = World::join().expect("MPI starts") else {
        eprintln!("run me under mpirun with at least two processes");
        return;
    };
    for params in [9usize, 4_801, 70_000] {
        let mut values = vec![1.0f64; params + 1];
        // Warm-up, then the median of many.
        for _ in 0..100 {
            world.sum(&mut values);
        }
        let mut times: Vec<f64> = (0..2_000)
            .map(|_| {
                let start = Instant::now();
                world.sum(&mut values);
                start.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        if world.is_root() {
            println!(
                "{} processes, P = {params}: median all-reduce {:.1} us (p90 {:.1} us)",
                world.size(),
                times[times.len() / 2] * 1e6,
                times[times.len() * 9 / 10] * 1e6
            );
        }
    }
}

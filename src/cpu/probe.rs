//! The memory-bandwidth yardstick: a read-only pass over a dataset, the least any training step
//! must do. Its time is the floor that the fused kernel's step time is measured against. And
//! the arithmetic yardstick: the peak rate of multiply-adds, the floor of a compute-bound step.

use rayon::prelude::*;

use super::simd::{madd, Isa, Level, SimdJob};
use crate::data::Points;

/// Points per parallel task.
const CHUNK: usize = 1 << 16;
/// Independent partial sums, so the pass is bound by memory rather than by add latency.
const LANES: usize = 32;

/// Reads every value of `data` once (in parallel) and returns their sum, so the reads cannot be
/// optimised away.
pub fn read_once(data: &Points) -> f64 {
    let level = Level::detect();
    let points = data.len();
    (0..points.div_ceil(CHUNK))
        .into_par_iter()
        .map(|chunk| {
            let range = chunk * CHUNK..((chunk + 1) * CHUNK).min(points);
            data.with_block(range, |columns| {
                columns
                    .iter()
                    .map(|column| f64::from(level.run(SumChunk(column))))
                    .sum::<f64>()
            })
        })
        .sum()
}

/// The sum of a chunk, in independent partial sums.
struct SumChunk<'a>(&'a [f32]);

impl SimdJob for SumChunk<'_> {
    type Output = f32;

    #[inline(always)]
    fn run<S: Isa>(self, _: S) -> f32 {
        let mut acc = [0.0f32; LANES];
        let mut blocks = self.0.chunks_exact(LANES);
        for block in &mut blocks {
            for (a, v) in acc.iter_mut().zip(block) {
                *a += v;
            }
        }
        acc.iter().sum::<f32>() + blocks.remainder().iter().sum::<f32>()
    }
}

/// Independent multiply-add chains per thread: enough to cover the FMA latency on two ports.
const CHAINS: usize = 12;
/// Rounds per thread in one peak measurement (about 0.1 s on a 2.5 GHz AVX-512 core).
const ROUNDS: usize = 20_000_000;

/// This machine's single-precision arithmetic peak in flop/s, measured: every rayon thread
/// runs [`CHAINS`] independent chains of vector multiply-adds (2 flops per lane) in the widest
/// instruction set the CPU has, with no memory traffic. The best of three runs.
pub fn fma_peak() -> f64 {
    let level = Level::detect();
    let lanes = level.lanes();
    (0..3)
        .map(|_| {
            let start = std::time::Instant::now();
            let sums = rayon::broadcast(|ctx| chains(level, ROUNDS, ctx.index() as f32));
            let seconds = start.elapsed().as_secs_f64();
            std::hint::black_box(sums);
            let flops = (rayon::current_num_threads() * ROUNDS * CHAINS * lanes * 2) as f64;
            flops / seconds
        })
        .fold(0.0, f64::max)
}

fn chains(level: Level, rounds: usize, seed: f32) -> f32 {
    level.run(Chains { rounds, seed })
}

/// [`CHAINS`] chains of one register each, for `rounds` rounds.
struct Chains {
    rounds: usize,
    seed: f32,
}

impl SimdJob for Chains {
    type Output = f32;

    #[inline(always)]
    fn run<S: Isa>(self, _: S) -> f32 {
        // The array's length must be a constant: one per register width.
        match S::LANES {
            16 => chains_body::<{ 16 * CHAINS }, S>(self.rounds, self.seed),
            8 => chains_body::<{ 8 * CHAINS }, S>(self.rounds, self.seed),
            _ => chains_body::<{ 4 * CHAINS }, S>(self.rounds, self.seed),
        }
    }
}

/// `N` is the number of lanes in all chains together: [`CHAINS`] times the vector width.
#[inline(always)]
fn chains_body<const N: usize, S: Isa>(rounds: usize, seed: f32) -> f32 {
    let mut acc = [seed; N];
    // Opaque to the compiler, so the chains cannot be folded away.
    let (m, a) = (
        std::hint::black_box(0.999_999f32),
        std::hint::black_box(1e-7f32),
    );
    for _ in 0..rounds {
        // One flat array, chain after chain: with nested arrays the vectoriser goes astray.
        for x in acc.iter_mut() {
            *x = madd::<S>(*x, m, a);
        }
    }
    acc.iter().sum()
}

//! The memory-bandwidth yardstick: a read-only pass over a dataset, the least any training step
//! must do. Its time is the floor that the fused kernel's step time is measured against.

use rayon::prelude::*;

use crate::data::Dataset;

/// Values per parallel task.
const CHUNK: usize = 1 << 16;
/// Independent partial sums, so the pass is bound by memory rather than by add latency.
const LANES: usize = 32;

/// Reads every value of `data` once (in parallel) and returns their sum, so the reads cannot be
/// optimised away.
pub fn read_once(data: &Dataset) -> f64 {
    (0..data.inputs() + data.outputs())
        .map(|c| {
            data.column(c)
                .par_chunks(CHUNK)
                .map(|chunk| f64::from(sum_chunk(chunk)))
                .sum::<f64>()
        })
        .sum()
}

#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
fn sum_chunk(values: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut blocks = values.chunks_exact(LANES);
    for block in &mut blocks {
        for (a, v) in acc.iter_mut().zip(block) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + blocks.remainder().iter().sum::<f32>()
}

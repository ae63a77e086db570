//! Synthetic point sets: inputs uniform in `[-1, 1]^inputs`, targets from a teacher network
//! plus gaussian noise. Points are made in fixed-size blocks, each drawing from its own ChaCha
//! stream (the seed picks the key, the block's index the stream), so the result depends only
//! on the seed (not on the number of threads) and the blocks can be made in parallel.

use ndarray::{Array2, ArrayViewMut2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use super::Dataset;
use crate::error::{Error, Result};
use crate::network::Network;

/// Points per block: one random stream each.
const BLOCK: usize = 1 << 16;

/// Refuses a set of `points` points of `inputs + outputs` columns larger than the memory
/// available, before anything is made.
pub fn check_size(points: usize, inputs: usize, outputs: usize) -> Result<()> {
    crate::limits::check_memory(
        &format!("a synthetic set of {points} points"),
        crate::limits::bytes_for(points, (inputs + outputs) * 4),
    )
}

/// Makes `points` points from `teacher` with gaussian noise of standard deviation `noise`.
pub fn generate(teacher: &Network, points: usize, noise: f64, seed: u64) -> Result<Dataset> {
    generate_share(teacher, points, noise, seed, 0..points)
}

/// The points `share` of the set [`generate`] makes, bit for bit, making only the blocks
/// they lie in (a process's share of a set spread over several processes).
pub fn generate_share(
    teacher: &Network,
    points: usize,
    noise: f64,
    seed: u64,
    share: std::ops::Range<usize>,
) -> Result<Dataset> {
    if points == 0 {
        return Err(Error::InvalidArgument("--points must be at least 1".into()));
    }
    if share.is_empty() || share.end > points {
        return Err(Error::InvalidArgument(format!(
            "points {}..{} of a set of {points}",
            share.start, share.end
        )));
    }
    if !(noise.is_finite() && noise >= 0.0) {
        return Err(Error::InvalidArgument(format!(
            "noise must be a finite number >= 0 (got {})",
            crate::error::number(noise)
        )));
    }
    let inputs = teacher.inputs();
    // The whole blocks the share lies in.
    let first_block = share.start / BLOCK;
    // Saturating: an absurd --points must reach the size check below, not wrap around.
    let span = first_block * BLOCK..share.end.div_ceil(BLOCK).saturating_mul(BLOCK).min(points);
    check_size(span.len(), inputs, teacher.outputs())?;
    let mut columns = Array2::<f32>::zeros((inputs + teacher.outputs(), span.len()));
    columns
        .axis_chunks_iter_mut(Axis(1), BLOCK)
        .into_par_iter()
        .enumerate()
        .for_each(|(block, chunk)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream((first_block + block) as u64);
            fill_block(teacher, noise, &mut rng, chunk)
        });
    if span != share {
        let within = share.start - span.start..share.end - span.start;
        columns = columns.slice(ndarray::s![.., within]).to_owned();
    }
    // A huge noise or a teacher whose outputs overflow single precision gives targets that
    // downhill itself would refuse to read: refuse them here, before anything is written.
    let targets = columns.slice(ndarray::s![inputs.., ..]);
    if let Some(((column, point), value)) = targets.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "the target y{column} of point {} came out as {value} (too large for single \
             precision): lower --noise or use a teacher with smaller outputs",
            share.start + point + 1
        )));
    }
    Dataset::from_columns(columns, inputs)
}

fn fill_block(teacher: &Network, noise: f64, rng: &mut ChaCha8Rng, mut chunk: ArrayViewMut2<f32>) {
    let inputs = teacher.inputs();
    let n = chunk.ncols();
    let x = Array2::<f64>::from_shape_fn((inputs, n), |_| rng.random_range(-1.0..=1.0));
    // The teacher's layers in pieces of points small enough that a wide teacher's activations
    // (points x width f64 values) stay within a few tens of MB.
    let widest = teacher.widths().into_iter().max().unwrap_or(1);
    let piece = ((1usize << 22) / widest).clamp(1, n.max(1));
    let mut y = Array2::<f64>::zeros((teacher.outputs(), n));
    for start in (0..n).step_by(piece) {
        let end = (start + piece).min(n);
        let part = teacher.forward_columns(x.slice(ndarray::s![.., start..end]));
        y.slice_mut(ndarray::s![.., start..end]).assign(&part);
    }
    for (dst, src) in chunk.rows_mut().into_iter().zip(x.rows()) {
        dst.into_iter().zip(src).for_each(|(d, s)| *d = *s as f32);
    }
    for (dst, src) in chunk.rows_mut().into_iter().skip(inputs).zip(y.rows()) {
        for (d, s) in dst.into_iter().zip(src) {
            let eps: f64 = rng.sample(StandardNormal);
            *d = (s + noise * eps) as f32;
        }
    }
}

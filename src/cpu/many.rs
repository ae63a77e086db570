//! The SSE of many networks of one shape in one pass over the points: the loss landscape's
//! grid of parameter vectors reads the data once, not once per vector.

use rayon::prelude::*;

use super::fused::{block_range, forward_tile, Scratch, BLOCK};
use super::layout::KernelLayout;
use super::simd::{load_padded, Isa, Level, SimdJob};
use super::tile::{dot, TILE};
use crate::data::Points;
use crate::network::Network;

/// The SSE of each of `nets` (all of one shape) over `data`: each tile is loaded once and run
/// forward through every network.
pub fn sse_of_many(nets: &[Network], data: &Points) -> Vec<f64> {
    if nets.is_empty() {
        return Vec::new();
    }
    let layouts: Vec<KernelLayout> = nets.iter().map(KernelLayout::new).collect();
    let points = data.len();
    let level = Level::detect();
    let partials: Vec<Vec<f64>> = (0..points.div_ceil(BLOCK))
        .into_par_iter()
        .map_init(
            || Scratch::new(&layouts[0]),
            |scratch, block| {
                let (start, end) = block_range(block, points);
                let mut sums = vec![0.0; layouts.len()];
                data.with_block(start..end, |columns| {
                    level.run(ManyBlock {
                        layouts: &layouts,
                        scratch,
                        columns,
                        start: 0,
                        end: end - start,
                        sums: &mut sums,
                    })
                });
                sums
            },
        )
        .collect();
    // Block partials in block order: the result does not depend on the thread count.
    let mut total = vec![0.0; layouts.len()];
    for block in partials {
        total.iter_mut().zip(block).for_each(|(t, b)| *t += b);
    }
    total
}

/// The SSE of every network over points `start..end`, added to `sums`.
struct ManyBlock<'a> {
    layouts: &'a [KernelLayout],
    scratch: &'a mut Scratch,
    columns: &'a [&'a [f32]],
    start: usize,
    end: usize,
    sums: &'a mut [f64],
}

impl SimdJob for ManyBlock<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Isa>(self, isa: S) {
        let ManyBlock {
            layouts,
            scratch,
            columns,
            start,
            end,
            sums,
        } = self;
        let inputs = layouts[0].widths[0];
        let outputs = layouts[0].outputs();
        let last = layouts[0].layers.len();
        for tile_start in (start..end).step_by(TILE) {
            let len = TILE.min(end - tile_start);
            load_padded(&mut scratch.acts[0], &columns[..inputs], tile_start, len);
            // The targets wait in the second delta buffer, unused by a forward pass.
            load_padded(
                &mut scratch.delta_below[..outputs],
                &columns[inputs..],
                tile_start,
                len,
            );
            for (plan, sum) in layouts.iter().zip(sums.iter_mut()) {
                forward_tile(isa, plan, &mut scratch.acts);
                for k in 0..outputs {
                    let error = &mut scratch.delta[k];
                    let (prediction, target) = (&scratch.acts[last][k], &scratch.delta_below[k]);
                    for ((e, p), t) in error.iter_mut().zip(prediction).zip(target) {
                        *e = p - t;
                    }
                    error[len..].fill(0.0); // padded points contribute nothing
                    *sum += f64::from(dot(error, error));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{CpuKernel, Reference};
    use crate::data;
    use crate::network::Activation;

    #[test]
    fn each_sum_is_the_reference_sse() {
        let teacher = Network::random(&[3, 9, 2], Activation::Relu, true, 1).unwrap();
        let nets: Vec<Network> = (2..6)
            .map(|seed| Network::random(&[3, 9, 2], Activation::Relu, true, seed).unwrap())
            .collect();
        for points in [1, TILE - 1, BLOCK + 1] {
            let set = data::generate(&teacher, points, 0.1, 3).unwrap();
            for (got, net) in sse_of_many(&nets, &set).iter().zip(&nets) {
                let want = Reference.evaluate(net, &set).sse;
                assert!((got - want).abs() <= 2e-5 * want, "n={points}");
            }
        }
    }
}

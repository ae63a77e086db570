//! The fast CPU kernel: one pass over the points per step, in parallel blocks.
//!
//! Each rayon task takes a block of points and walks it in tiles (`tile.rs`), so every inner
//! loop runs over points and vectorises. A tile does its forward pass, error and backward pass
//! while it sits in L1, so each value of the data is read from memory exactly once per step.
//! Gradients are summed in f32 within a tile and a block, and in f64 across blocks; the block
//! partials are added in block order, so results do not depend on the thread count. Small
//! one-hidden-layer networks take the register-resident kernel in `small.rs` instead.

// Index loops mirror the math (`z[j] += w[j][i] * a[i]`) and are the shape the vectoriser
// handles best; iterator chains over several arrays at once would obscure both.
#![allow(clippy::needless_range_loop)]

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use super::kernel::CpuKernel;
use super::layout::{KernelLayout, LayerPlan};
use super::simd::{keep_where_positive, load_padded, pairwise_sum, Isa, Level, SimdJob};
use super::tile::{dot, gradient_tile, matmul_tile, Lane, LaneSums, LANES, TILE};
use crate::data::{row_slices, Points};
use crate::loss::Evaluation;
use crate::network::{Activation, Network};

/// Points per parallel task.
pub(super) const BLOCK: usize = 16 * 1024;

/// The fused, parallel CPU kernel.
#[derive(Debug)]
pub struct Fused {
    /// Per-block partial sums (one per network evaluated), reused from step to step.
    partials: Vec<Vec<Partial>>,
    /// Use the register-resident kernel for small one-hidden-layer networks.
    specialise: bool,
    /// The instruction set of the general tile kernel's build.
    level: Level,
}

impl Default for Fused {
    fn default() -> Self {
        Fused {
            partials: Vec::new(),
            specialise: true,
            level: Level::detect(),
        }
    }
}

impl Fused {
    /// The fused kernel without the specialised small-network path (every shape goes through
    /// the general tile code); for tests and comparisons.
    pub fn general() -> Self {
        Fused {
            specialise: false,
            ..Fused::default()
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Partial {
    sse: f64,
    gradient: Vec<f64>,
}

/// Per-task working memory: the activations of every layer and two delta buffers, one tile
/// each.
pub(super) struct Scratch {
    pub(super) acts: Vec<Vec<Lane>>,
    pub(super) delta: Vec<Lane>,
    pub(super) delta_below: Vec<Lane>,
    /// Per-lane f32 sums of the weights' gradient over the tiles of one block (indexed like
    /// the parameters; the biases' entries stay zero), added to the f64 totals per block.
    weight_sums: Vec<LaneSums>,
}

thread_local! {
    /// Each thread's scratch from its last block, kept for the next evaluation of the same
    /// shape: a mini-batch step is short, and allocating (and the kernel zeroing) a fresh
    /// scratch per call cost about a sixth of it.
    static KEPT_SCRATCH: std::cell::RefCell<Option<Scratch>> = const { std::cell::RefCell::new(None) };
}

impl Scratch {
    /// Whether this scratch fits `plan`'s shape.
    fn fits(&self, plan: &KernelLayout) -> bool {
        self.weight_sums.len() == plan.params.len()
            && self.acts.len() == plan.widths.len()
            && self
                .acts
                .iter()
                .zip(&plan.widths)
                .all(|(a, &w)| a.len() == w)
            && self.delta.len() == plan.widths.iter().copied().max().unwrap_or(1)
    }

    /// Runs `work` with this thread's kept scratch for `plan` (made if it has none of that
    /// shape), and keeps it for the next call.
    fn with_kept<R>(plan: &KernelLayout, work: impl FnOnce(&mut Scratch) -> R) -> R {
        let mut scratch = KEPT_SCRATCH
            .with(|kept| kept.borrow_mut().take())
            .filter(|s| s.fits(plan))
            .unwrap_or_else(|| Scratch::new(plan));
        let result = work(&mut scratch);
        KEPT_SCRATCH.with(|kept| *kept.borrow_mut() = Some(scratch));
        result
    }

    pub(super) fn new(plan: &KernelLayout) -> Self {
        let widest = plan.widths.iter().copied().max().unwrap_or(1);
        Scratch {
            acts: plan.widths.iter().map(|&w| vec![[0.0; TILE]; w]).collect(),
            delta: vec![[0.0; TILE]; widest],
            delta_below: vec![[0.0; TILE]; widest],
            weight_sums: vec![[0.0; LANES]; plan.params.len()],
        }
    }
}

/// `out = act(W a + b)` for one tile.
#[inline(always)]
fn forward_layer<S: Isa>(
    isa: S,
    layer: &LayerPlan,
    plan: &KernelLayout,
    input: &[Lane],
    out: &mut [Lane],
) {
    // W column by column is W transposed.
    let w = &plan.transposed[layer.weights..][..layer.nodes * layer.inputs];
    let bias = layer.bias.map(|o| &plan.params[o..o + layer.nodes]);
    matmul_tile(isa, w, layer.nodes, layer.inputs, bias, input, out);
    activate(layer.activation, &mut out[..layer.nodes]);
}

/// `act` applied to a layer's pre-activations: the ReLU as a mask; tanh and the sigmoid
/// value by value (through the standard library's f32 functions).
#[inline(always)]
fn activate(act: Activation, out: &mut [Lane]) {
    match act {
        Activation::Identity => {}
        Activation::Relu => {
            for z in out {
                let copy = *z;
                keep_where_positive(z, &copy);
            }
        }
        Activation::Tanh => out.iter_mut().flatten().for_each(|v| *v = v.tanh()),
        Activation::Sigmoid => out
            .iter_mut()
            .flatten()
            .for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
    }
}

/// `delta` times the slope of `act` where its outputs are `a`.
#[inline(always)]
fn times_slope(act: Activation, delta: &mut Lane, a: &Lane) {
    match act {
        Activation::Identity => {}
        Activation::Relu => keep_where_positive(delta, a),
        Activation::Tanh => {
            for (d, a) in delta.iter_mut().zip(a) {
                *d *= 1.0 - a * a;
            }
        }
        Activation::Sigmoid => {
            for (d, a) in delta.iter_mut().zip(a) {
                *d *= a * (1.0 - a);
            }
        }
    }
}

/// Every layer's activations for the tile whose inputs are in `acts[0]`.
#[inline(always)]
pub(super) fn forward_tile<S: Isa>(isa: S, plan: &KernelLayout, acts: &mut [Vec<Lane>]) {
    for (l, layer) in plan.layers.iter().enumerate() {
        let (below, above) = acts.split_at_mut(l + 1);
        forward_layer(isa, layer, plan, &below[l], &mut above[0]);
    }
}

/// Forward, error and backward pass for one tile of `len` points starting at `start`;
/// returns the tile's SSE and adds its gradient to `gradient`.
#[inline(always)]
fn tile<S: Isa>(
    isa: S,
    plan: &KernelLayout,
    scratch: &mut Scratch,
    columns: &[&[f32]],
    start: usize,
    len: usize,
    gradient: &mut [f64],
) -> f64 {
    let inputs = plan.widths[0];
    let outputs = plan.outputs();
    load_padded(&mut scratch.acts[0], &columns[..inputs], start, len);
    forward_tile(isa, plan, &mut scratch.acts);

    // Error and the slope of the SSE with respect to the output layer's z.
    let last = plan.layers.len();
    let out_act = plan.layers[last - 1].activation;
    let mut sse = 0.0f64;
    for k in 0..outputs {
        let prediction = &scratch.acts[last][k];
        let delta = &mut scratch.delta[k];
        if len == TILE {
            let target: &Lane = columns[inputs + k][start..start + TILE]
                .try_into()
                .expect("the slice is TILE long");
            for q in 0..TILE {
                delta[q] = prediction[q] - target[q];
            }
        } else {
            let target = &columns[inputs + k][start..start + len];
            for q in 0..len {
                delta[q] = prediction[q] - target[q];
            }
            delta[len..].fill(0.0); // padded points contribute nothing
        }
        sse += f64::from(dot(delta, delta));
        for d in delta.iter_mut() {
            *d *= 2.0;
        }
        times_slope(out_act, delta, prediction);
    }

    for (l, layer) in plan.layers.iter().enumerate().rev() {
        let input = &scratch.acts[l];
        let weights = &mut scratch.weight_sums[layer.weights..][..layer.nodes * layer.inputs];
        gradient_tile(
            isa,
            &scratch.delta,
            layer.nodes,
            input,
            layer.inputs,
            weights,
        );
        if let Some(o) = layer.bias {
            for j in 0..layer.nodes {
                gradient[o + j] += f64::from(pairwise_sum(&scratch.delta[j]));
            }
        }
        if l == 0 {
            break;
        }
        // Chain back through the weights (W^T, given column by column: W as stored) and the
        // activation of the layer below.
        let w_t = &plan.params[layer.weights..][..layer.nodes * layer.inputs];
        let back = &mut scratch.delta_below;
        matmul_tile(
            isa,
            w_t,
            layer.inputs,
            layer.nodes,
            None,
            &scratch.delta,
            back,
        );
        let below = plan.layers[l - 1].activation;
        for i in 0..layer.inputs {
            times_slope(below, &mut back[i], &input[i]);
        }
        std::mem::swap(&mut scratch.delta, &mut scratch.delta_below);
    }
    sse
}

/// The SSE of points `start..end`, adding their gradient to `gradient`.
struct Block<'a> {
    plan: &'a KernelLayout,
    scratch: &'a mut Scratch,
    columns: &'a [&'a [f32]],
    start: usize,
    end: usize,
    gradient: &'a mut [f64],
}

impl SimdJob for Block<'_> {
    type Output = f64;

    #[inline(always)]
    fn run<S: Isa>(self, isa: S) -> f64 {
        let mut sse = 0.0;
        for tile_start in (self.start..self.end).step_by(TILE) {
            let len = TILE.min(self.end - tile_start);
            sse += tile(
                isa,
                self.plan,
                self.scratch,
                self.columns,
                tile_start,
                len,
                self.gradient,
            );
        }
        for (g, sums) in self.gradient.iter_mut().zip(&mut self.scratch.weight_sums) {
            *g += f64::from(pairwise_sum(sums));
            *sums = [0.0; LANES];
        }
        sse
    }
}

/// The points of parallel task `block`.
pub(super) fn block_range(block: usize, points: usize) -> (usize, usize) {
    let start = block * BLOCK;
    (start, (start + BLOCK).min(points))
}

/// Blocks a set is cut into at most below [`BLOCK`] points each, so that every thread has
/// work on a small set (a mini-batch): a fixed count rather than the machine's threads, so
/// that the sums (and the results) do not depend on the machine.
const MIN_BLOCKS: usize = 8;
/// The least work worth a parallel task, in parameters times points.
const MIN_TASK_WORK: usize = 1 << 16;
/// Points per parallel task over `points` points of a network of `params` parameters:
/// [`BLOCK`], or on a small set an even share of up to [`MIN_BLOCKS`] blocks, each worth a
/// task, in whole tiles: a block of part of a tile costs the whole tile's arithmetic
/// (measured: a batch of 256 points of 8-64-64-1 in two blocks of 128 took 1.3x the time of
/// one block of 256).
fn block_points(points: usize, params: usize) -> usize {
    let by_work = points.saturating_mul(params.max(1)) / MIN_TASK_WORK;
    let blocks = by_work.min(MIN_BLOCKS).min(points / TILE).max(1);
    points.div_ceil(blocks).next_multiple_of(TILE).min(BLOCK)
}

impl CpuKernel for Fused {
    fn name(&self) -> &'static str {
        "fused"
    }

    fn evaluate(&mut self, net: &Network, data: &Points) -> Evaluation {
        self.evaluate_many(&[net], data)
            .pop()
            .expect("one evaluation per network")
    }

    /// Every network's evaluation in one pass over the points: each parallel task takes a
    /// block of points and runs every network over it while the block is in cache, so the
    /// data is read from memory once for all of them. Each network's block partials are added
    /// in block order, as for one network alone: a network evaluated among others gets
    /// exactly the numbers it gets alone.
    fn evaluate_many(&mut self, nets: &[&Network], data: &Points) -> Vec<Evaluation> {
        let plans: Vec<KernelLayout> = nets.iter().map(|net| KernelLayout::new(net)).collect();
        let Some(first) = plans.first() else {
            return Vec::new();
        };
        let points = data.len();
        let params = first.params.len();
        let small = self
            .specialise
            .then(|| super::small::block_for(first))
            .flatten();
        let level = self.level;
        let block_size = block_points(points, params);
        (0..points.div_ceil(block_size))
            .into_par_iter()
            .map(|block| {
                Scratch::with_kept(first, |scratch| {
                    let start = block * block_size;
                    let end = (start + block_size).min(points);
                    data.with_block(start..end, |columns| {
                        plans
                            .iter()
                            .map(|plan| {
                                let mut gradient = vec![0.0; params];
                                let len = end - start;
                                let sse = match small {
                                    Some(small) => small.run(plan, columns, 0, len, &mut gradient),
                                    None => level.run(Block {
                                        plan,
                                        scratch,
                                        columns,
                                        start: 0,
                                        end: len,
                                        gradient: &mut gradient,
                                    }),
                                };
                                Partial { sse, gradient }
                            })
                            .collect::<Vec<Partial>>()
                    })
                })
            })
            .collect_into_vec(&mut self.partials);

        (0..plans.len())
            .map(|n| {
                let mut sse = 0.0;
                let mut gradient = vec![0.0; params];
                for block in &self.partials {
                    let p = &block[n];
                    sse += p.sse;
                    gradient
                        .iter_mut()
                        .zip(&p.gradient)
                        .for_each(|(t, g)| *t += g);
                }
                Evaluation {
                    points,
                    outputs: data.outputs(),
                    sse,
                    sse_gradient: gradient,
                }
            })
            .collect()
    }

    fn prepare(&mut self, net: &Network) {
        if self.specialise {
            super::small::block_for(&KernelLayout::new(net));
        }
    }

    fn predict(&mut self, net: &Network, inputs: ArrayView2<f32>) -> Array2<f32> {
        let plan = KernelLayout::new(net);
        let points = inputs.ncols();
        let standard = inputs.as_standard_layout();
        let columns = row_slices(standard.view());
        let mut out = Array2::<f32>::zeros((plan.outputs(), points));
        let level = self.level;
        out.axis_chunks_iter_mut(Axis(1), BLOCK)
            .into_par_iter()
            .enumerate()
            .for_each_init(
                || Scratch::new(&plan),
                |scratch, (block, out)| {
                    level.run(Predict {
                        plan: &plan,
                        scratch,
                        columns: &columns,
                        block,
                        out,
                    })
                },
            );
        out
    }
}

/// The predictions for the points of parallel task `block`, written into `out`.
struct Predict<'a> {
    plan: &'a KernelLayout,
    scratch: &'a mut Scratch,
    columns: &'a [&'a [f32]],
    block: usize,
    out: ArrayViewMut2<'a, f32>,
}

impl SimdJob for Predict<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Isa>(mut self, isa: S) {
        let (start, end) = block_range(self.block, self.columns[0].len());
        let last = self.plan.layers.len();
        for tile_start in (start..end).step_by(TILE) {
            let len = TILE.min(end - tile_start);
            load_padded(&mut self.scratch.acts[0], self.columns, tile_start, len);
            forward_tile(isa, self.plan, &mut self.scratch.acts);
            for (k, mut row) in self.out.rows_mut().into_iter().enumerate() {
                let local = tile_start - start;
                for q in 0..len {
                    row[local + q] = self.scratch.acts[last][k][q];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::Reference;
    use crate::data;

    /// Every build of the general tile kernel this machine can run (not only the one
    /// `Level::detect` picks) matches the reference, on shapes that take the wide 8-row and
    /// 4x4 blocks and their remainders, at sizes that end mid-tile and mid-block; and predicts
    /// what the reference predicts.
    #[test]
    fn every_available_build_matches_the_reference() {
        for widths in [&[9usize, 17, 12, 2][..], &[8, 64, 8, 1], &[3, 5, 2]] {
            let teacher = Network::random(widths, Activation::Relu, true, 1).unwrap();
            let student = Network::random(widths, Activation::Relu, true, 2).unwrap();
            for points in [1, TILE + 3, BLOCK + 5] {
                let set = data::generate(&teacher, points, 0.1, 3).unwrap();
                let want = Reference.evaluate(&student, &set);
                let want_predictions = Reference.predict(&student, set.input_columns());
                let scale = want.sse_gradient.iter().map(|g| g * g).sum::<f64>().sqrt();
                for level in Level::available() {
                    let mut kernel = Fused {
                        level,
                        ..Fused::general()
                    };
                    let got = kernel.evaluate(&student, &set);
                    assert!(
                        (got.sse - want.sse).abs() <= 2e-5 * want.sse,
                        "{widths:?} {level:?} n={points}"
                    );
                    for (g, w) in got.sse_gradient.iter().zip(&want.sse_gradient) {
                        assert!(
                            (g - w).abs() <= 2e-5 * scale,
                            "{widths:?} {level:?} n={points}: {g} vs {w}"
                        );
                    }
                    let predictions = kernel.predict(&student, set.input_columns());
                    for (p, w) in predictions.iter().zip(&want_predictions) {
                        assert!((p - w).abs() <= 1e-4 * (1.0 + w.abs()), "{level:?}");
                    }
                }
            }
        }
    }
}

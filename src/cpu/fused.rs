//! The fast CPU kernel: one pass over the points per step, in parallel blocks.
//!
//! Each rayon task takes a block of points and walks it in tiles of [`TILE`] points held
//! structure-of-arrays (one `[f32; TILE]` lane per node), so every inner loop runs over points
//! and vectorises. A tile does its forward pass, error and backward pass while it sits in L1,
//! so each value of the data is read from memory exactly once per step. Gradients are summed in
//! f32 within a tile (by 8 independent partial sums) and in f64 across tiles and blocks; the
//! block partials are added in block order, so results do not depend on the thread count.

// Index loops mirror the math (`z[j] += w[j][i] * a[i]`) and are the shape the vectoriser
// handles best; iterator chains over several arrays at once would obscure both.
#![allow(clippy::needless_range_loop)]

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use super::CpuKernel;
use crate::data::{row_slices, Dataset};
use crate::loss::Evaluation;
use crate::network::{Activation, Network};

/// Points per tile (a power of two, for the pairwise sums).
pub const TILE: usize = 128;
/// Points per parallel task.
pub const BLOCK: usize = 16 * 1024;

type Lane = [f32; TILE];

/// The fused, parallel CPU kernel.
#[derive(Debug)]
pub struct Fused {
    /// Per-block partial sums, reused from step to step.
    partials: Vec<Partial>,
    /// Use the register-resident kernel for small one-hidden-layer networks.
    specialise: bool,
}

impl Default for Fused {
    fn default() -> Self {
        Fused {
            partials: Vec::new(),
            specialise: true,
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

/// One layer as the kernels see it: offsets into the flat f32 parameter vector.
#[derive(Clone, Copy, Debug)]
pub(super) struct LayerPlan {
    pub inputs: usize,
    pub nodes: usize,
    pub weights: usize,
    pub bias: Option<usize>,
    pub activation: Activation,
}

/// The network flattened to f32 for one step.
pub(super) struct KernelLayout {
    pub layers: Vec<LayerPlan>,
    pub params: Vec<f32>,
    pub widths: Vec<usize>,
}

impl KernelLayout {
    pub(super) fn new(net: &Network) -> Self {
        let layers = net
            .layers()
            .iter()
            .zip(net.param_offsets())
            .map(|(l, (weights, bias))| LayerPlan {
                inputs: l.inputs(),
                nodes: l.nodes(),
                weights,
                bias,
                activation: l.activation,
            })
            .collect();
        KernelLayout {
            layers,
            params: net.params().iter().map(|&p| p as f32).collect(),
            widths: net.widths(),
        }
    }

    fn outputs(&self) -> usize {
        self.widths[self.widths.len() - 1]
    }
}

/// Per-task working memory: the activations of every layer and two delta buffers, one tile
/// each.
struct Scratch {
    acts: Vec<Vec<Lane>>,
    delta: Vec<Lane>,
    delta_below: Vec<Lane>,
}

impl Scratch {
    fn new(plan: &KernelLayout) -> Self {
        let widest = plan.widths.iter().copied().max().unwrap_or(1);
        Scratch {
            acts: plan.widths.iter().map(|&w| vec![[0.0; TILE]; w]).collect(),
            delta: vec![[0.0; TILE]; widest],
            delta_below: vec![[0.0; TILE]; widest],
        }
    }
}

/// Sum of `a[q] * b[q]`: the products, then a pairwise (tree) sum. Both steps are
/// element-wise loops that vectorise, unlike a running sum, and the tree keeps the rounding
/// error at `log2(TILE)` additions deep.
#[inline(always)]
fn dot(a: &Lane, b: &Lane) -> f32 {
    let mut products = [0.0f32; TILE];
    for q in 0..TILE {
        products[q] = a[q] * b[q];
    }
    tree_sum(products)
}

/// Sum of `a[q]`, pairwise.
#[inline(always)]
fn sum(a: &Lane) -> f32 {
    tree_sum(*a)
}

#[inline(always)]
fn tree_sum(mut v: Lane) -> f32 {
    let mut width = TILE;
    while width > 1 {
        width /= 2;
        for q in 0..width {
            v[q] += v[q + width];
        }
    }
    v[0]
}

/// `v` where `a > 0`, else 0. Written as a bit mask because the compiler turns the plain `if`
/// into a branch per point instead of vector code.
#[inline(always)]
fn keep_if_positive(v: f32, a: f32) -> f32 {
    f32::from_bits(v.to_bits() & 0u32.wrapping_sub(u32::from(a > 0.0)))
}

/// The ReLU's slope applied to a tile: `v[q]` where `a[q] > 0`, else 0.
#[inline(always)]
fn keep_where_positive(v: &mut Lane, a: &Lane) {
    for q in 0..TILE {
        v[q] = keep_if_positive(v[q], a[q]);
    }
}

/// Copies `len` values of each column starting at `start` into the lanes, zero-padding a short
/// final tile. Full tiles take the fixed-size path, which compiles to a few vector moves.
#[inline(always)]
fn load(lanes: &mut [Lane], columns: &[&[f32]], start: usize, len: usize) {
    for (lane, col) in lanes.iter_mut().zip(columns) {
        if len == TILE {
            let full: &Lane = col[start..start + TILE]
                .try_into()
                .expect("the slice is TILE long");
            *lane = *full;
        } else {
            lane[..len].copy_from_slice(&col[start..start + len]);
            lane[len..].fill(0.0);
        }
    }
}

/// `out = act(W a + b)` for one tile.
#[inline(always)]
fn forward_layer(layer: &LayerPlan, params: &[f32], input: &[Lane], out: &mut [Lane]) {
    for (j, z) in out.iter_mut().enumerate().take(layer.nodes) {
        let b = layer.bias.map_or(0.0, |o| params[o + j]);
        z.fill(b);
        let row = &params[layer.weights + j * layer.inputs..][..layer.inputs];
        for (a, &w) in input.iter().zip(row) {
            for q in 0..TILE {
                z[q] += w * a[q];
            }
        }
        if layer.activation == Activation::Relu {
            for v in z.iter_mut() {
                *v = keep_if_positive(*v, *v);
            }
        }
    }
}

#[inline(always)]
fn forward_tile(plan: &KernelLayout, acts: &mut [Vec<Lane>]) {
    for (l, layer) in plan.layers.iter().enumerate() {
        let (below, above) = acts.split_at_mut(l + 1);
        forward_layer(layer, &plan.params, &below[l], &mut above[0]);
    }
}

/// Forward, error and backward pass for one tile of `len` points starting at `start`;
/// returns the tile's SSE and adds its gradient to `gradient`.
#[inline(always)]
fn tile(
    plan: &KernelLayout,
    scratch: &mut Scratch,
    columns: &[&[f32]],
    start: usize,
    len: usize,
    gradient: &mut [f64],
) -> f64 {
    let inputs = plan.widths[0];
    let outputs = plan.outputs();
    load(&mut scratch.acts[0], &columns[..inputs], start, len);
    forward_tile(plan, &mut scratch.acts);

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
        if out_act == Activation::Relu {
            keep_where_positive(delta, prediction);
        }
    }

    for (l, layer) in plan.layers.iter().enumerate().rev() {
        let input = &scratch.acts[l];
        for j in 0..layer.nodes {
            let d = &scratch.delta[j];
            let row = &mut gradient[layer.weights + j * layer.inputs..][..layer.inputs];
            for (g, a) in row.iter_mut().zip(input) {
                *g += f64::from(dot(d, a));
            }
            if let Some(o) = layer.bias {
                gradient[o + j] += f64::from(sum(d));
            }
        }
        if l == 0 {
            break;
        }
        // Chain back through the weights and the activation of the layer below.
        let below_act = plan.layers[l - 1].activation;
        for i in 0..layer.inputs {
            let back = &mut scratch.delta_below[i];
            back.fill(0.0);
            for j in 0..layer.nodes {
                let w = plan.params[layer.weights + j * layer.inputs + i];
                let d = &scratch.delta[j];
                for q in 0..TILE {
                    back[q] += w * d[q];
                }
            }
            if below_act == Activation::Relu {
                keep_where_positive(back, &input[i]);
            }
        }
        std::mem::swap(&mut scratch.delta, &mut scratch.delta_below);
    }
    sse
}

/// The SSE of points `start..end`, adding their gradient to `gradient`. Compiled once per
/// vector instruction set (AVX2, baseline) and picked at run time: the tile loops are
/// written for the vectoriser, and wider vectors are where the speed comes from.
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
fn block_sse(
    plan: &KernelLayout,
    scratch: &mut Scratch,
    columns: &[&[f32]],
    start: usize,
    end: usize,
    gradient: &mut [f64],
) -> f64 {
    let mut sse = 0.0;
    for tile_start in (start..end).step_by(TILE) {
        let len = TILE.min(end - tile_start);
        sse += tile(plan, scratch, columns, tile_start, len, gradient);
    }
    sse
}

fn block_range(block: usize, points: usize) -> (usize, usize) {
    let start = block * BLOCK;
    (start, (start + BLOCK).min(points))
}

impl CpuKernel for Fused {
    fn name(&self) -> &'static str {
        "fused"
    }

    fn evaluate(&mut self, net: &Network, data: &Dataset) -> Evaluation {
        let plan = KernelLayout::new(net);
        let columns = data.column_slices();
        let points = data.len();
        let params = plan.params.len();
        let specialised = self
            .specialise
            .then(|| super::small::block_for(&plan))
            .flatten();
        (0..points.div_ceil(BLOCK))
            .into_par_iter()
            .map_init(
                || Scratch::new(&plan),
                |scratch, block| {
                    let (start, end) = block_range(block, points);
                    let mut partial = Partial {
                        sse: 0.0,
                        gradient: vec![0.0; params],
                    };
                    partial.sse = match specialised {
                        Some(small_block) => {
                            small_block(&plan, &columns, start, end, &mut partial.gradient)
                        }
                        None => {
                            block_sse(&plan, scratch, &columns, start, end, &mut partial.gradient)
                        }
                    };
                    partial
                },
            )
            .collect_into_vec(&mut self.partials);

        let mut total = Partial {
            sse: 0.0,
            gradient: vec![0.0; params],
        };
        for p in &self.partials {
            total.sse += p.sse;
            total
                .gradient
                .iter_mut()
                .zip(&p.gradient)
                .for_each(|(t, g)| *t += g);
        }
        Evaluation {
            points,
            outputs: data.outputs(),
            sse: total.sse,
            sse_gradient: total.gradient,
        }
    }

    fn predict(&mut self, net: &Network, inputs: ArrayView2<f32>) -> Array2<f32> {
        let plan = KernelLayout::new(net);
        let points = inputs.ncols();
        let standard = inputs.as_standard_layout();
        let columns = row_slices(standard.view());
        let mut out = Array2::<f32>::zeros((plan.outputs(), points));
        out.axis_chunks_iter_mut(Axis(1), BLOCK)
            .into_par_iter()
            .enumerate()
            .for_each_init(
                || Scratch::new(&plan),
                |scratch, (block, chunk)| predict_block(&plan, scratch, &columns, block, chunk),
            );
        out
    }
}

#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
fn predict_block(
    plan: &KernelLayout,
    scratch: &mut Scratch,
    columns: &[&[f32]],
    block: usize,
    mut out: ArrayViewMut2<f32>,
) {
    let (start, end) = block_range(block, columns[0].len());
    let last = plan.layers.len();
    for tile_start in (start..end).step_by(TILE) {
        let len = TILE.min(end - tile_start);
        load(&mut scratch.acts[0], columns, tile_start, len);
        forward_tile(plan, &mut scratch.acts);
        for (k, mut row) in out.rows_mut().into_iter().enumerate() {
            let local = tile_start - start;
            for q in 0..len {
                row[local + q] = scratch.acts[last][k][q];
            }
        }
    }
}

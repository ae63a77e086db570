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

use super::layout::{KernelLayout, LayerPlan};
use super::simd::{madd, Level};
use super::CpuKernel;
use crate::data::{row_slices, Dataset};
use crate::loss::Evaluation;
use crate::network::{Activation, Network};

/// Points per tile (a power of two, for the pairwise sums).
pub const TILE: usize = 256;
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
struct Scratch {
    acts: Vec<Vec<Lane>>,
    delta: Vec<Lane>,
    delta_below: Vec<Lane>,
    /// Per-lane f32 sums of the weights' gradient over the tiles of one block (indexed like
    /// the parameters; the biases' entries stay zero), added to the f64 totals per block.
    weight_sums: Vec<LaneSums>,
    grad_block: GradBlockFn,
    rows_block: Option<RowsBlockFn>,
}

impl Scratch {
    fn new(plan: &KernelLayout, level: Level) -> Self {
        let widest = plan.widths.iter().copied().max().unwrap_or(1);
        Scratch {
            acts: plan.widths.iter().map(|&w| vec![[0.0; TILE]; w]).collect(),
            delta: vec![[0.0; TILE]; widest],
            delta_below: vec![[0.0; TILE]; widest],
            weight_sums: vec![[0.0; LANES]; plan.params.len()],
            grad_block: grad_block_for(level),
            rows_block: rows_block_for(level),
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

/// Rows of a weight matrix taken together in the products: their sums over a run of points
/// (or their per-lane gradient sums) stay in registers while each input value is loaded once.
const ROWS: usize = 4;
/// Rows and columns of the weight blocks whose per-lane gradient sums stay in registers.
const GRAD_BLOCK: usize = 4;
/// Points per register block in the matrix-times-tile products (two AVX-512 registers).
const RUN: usize = 32;
/// Lanes of the per-weight partial sums in the gradient products (one AVX-512 register).
const LANES: usize = 16;

type LaneSums = [f32; LANES];

/// `out[r] = bias[r] + sum_c w[r][c] * input[c]` for one tile, with `w` given column by
/// column (`w_by_col[c * rows + r]`), so the weights one input meets are side by side.
#[inline(always)]
fn matmul_tile<const FMA: bool>(
    wide: Option<RowsBlockFn>,
    w_by_col: &[f32],
    rows: usize,
    cols: usize,
    bias: Option<&[f32]>,
    input: &[Lane],
    out: &mut [Lane],
) {
    let mut r = 0;
    if let Some(wide) = wide {
        while r + WIDE_ROWS <= rows {
            wide(w_by_col, r, rows, cols, bias, input, out);
            r += WIDE_ROWS;
        }
    }
    while r + ROWS <= rows {
        rows_block::<ROWS, FMA>(w_by_col, r, rows, cols, bias, input, out);
        r += ROWS;
    }
    while r < rows {
        rows_block::<1, FMA>(w_by_col, r, rows, cols, bias, input, out);
        r += 1;
    }
}

/// Rows taken together by the AVX-512 build of the products.
const WIDE_ROWS: usize = 8;

/// [`WIDE_ROWS`] rows of [`matmul_tile`], compiled on its own for one instruction set.
type RowsBlockFn = fn(&[f32], usize, usize, usize, Option<&[f32]>, &[Lane], &mut [Lane]);

/// Rows `first..first + 8` of [`matmul_tile`] with AVX-512 intrinsics: 8 rows x 32 points of
/// sums (16 registers) per pass over the inputs, so each loaded input vector feeds 8
/// multiply-adds. The vectoriser does not keep that many sums in registers by itself.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
#[inline(never)]
fn rows8_avx512(
    w_by_col: &[f32],
    first: usize,
    rows: usize,
    cols: usize,
    bias: Option<&[f32]>,
    input: &[Lane],
    out: &mut [Lane],
) {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_storeu_ps,
    };
    const R: usize = WIDE_ROWS;
    const V: usize = 16;
    let input = &input[..cols];
    let w = &w_by_col[..cols * rows];
    assert!(first + R <= rows, "the block lies inside the matrix");
    let mut b = [0.0f32; R];
    if let Some(bias) = bias {
        b.copy_from_slice(&bias[first..first + R]);
    }
    for at in (0..TILE).step_by(2 * V) {
        let mut acc: [[__m512; 2]; R] = [[_mm512_set1_ps(0.0); 2]; R];
        for k in 0..R {
            acc[k] = [_mm512_set1_ps(b[k]); 2];
        }
        for (c, lane) in input.iter().enumerate() {
            // SAFETY: `at + 2 * V <= TILE`, so both vectors lie inside the lane.
            let a = unsafe {
                [
                    _mm512_loadu_ps(lane.as_ptr().add(at)),
                    _mm512_loadu_ps(lane.as_ptr().add(at + V)),
                ]
            };
            let col = &w[c * rows + first..c * rows + first + R];
            for k in 0..R {
                let wk = _mm512_set1_ps(col[k]);
                acc[k][0] = _mm512_fmadd_ps(wk, a[0], acc[k][0]);
                acc[k][1] = _mm512_fmadd_ps(wk, a[1], acc[k][1]);
            }
        }
        for k in 0..R {
            let row = &mut out[first + k][at..at + 2 * V];
            // SAFETY: `row` is 2 * V long.
            unsafe {
                _mm512_storeu_ps(row.as_mut_ptr(), acc[k][0]);
                _mm512_storeu_ps(row.as_mut_ptr().add(V), acc[k][1]);
            }
        }
    }
}

/// The wide-block product function for `level`, if it has one.
fn rows_block_for(level: Level) -> Option<RowsBlockFn> {
    match level {
        // SAFETY (of the call inside): `level` came from `Level::detect` or
        // `Level::available`, so the CPU has AVX-512.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => Some(|w, first, rows, cols, bias, input, out| unsafe {
            rows8_avx512(w, first, rows, cols, bias, input, out)
        }),
        _ => None,
    }
}

/// Rows `first..first + R` of [`matmul_tile`], one run of points at a time.
#[inline(always)]
fn rows_block<const R: usize, const FMA: bool>(
    w_by_col: &[f32],
    first: usize,
    rows: usize,
    cols: usize,
    bias: Option<&[f32]>,
    input: &[Lane],
    out: &mut [Lane],
) {
    // Plain loops throughout, no `array::from_fn`: its closures are not inlined into code
    // built for a wider instruction set, and a call per element costs more than the math.
    let mut b = [0.0f32; R];
    if let Some(bias) = bias {
        b.copy_from_slice(&bias[first..first + R]);
    }
    for at in (0..TILE).step_by(RUN) {
        let mut acc = [[0.0f32; RUN]; R];
        for k in 0..R {
            acc[k] = [b[k]; RUN];
        }
        for c in 0..cols {
            // Values, not references (see `grad_block`).
            let a: [f32; RUN] =
                *<&[f32; RUN]>::try_from(&input[c][at..at + RUN]).expect("the slice is RUN long");
            let wc: [f32; R] = *<&[f32; R]>::try_from(&w_by_col[c * rows + first..][..R])
                .expect("the slice is R long");
            for k in 0..R {
                for q in 0..RUN {
                    acc[k][q] = madd::<FMA>(wc[k], a[q], acc[k][q]);
                }
            }
        }
        for k in 0..R {
            out[first + k][at..at + RUN].copy_from_slice(&acc[k]);
        }
    }
}

/// `gradient[r][c] += sum_q delta[r][q] * input[c][q]` over one tile, kept per lane
/// (`gradient` row-major `rows x cols`): per-lane f32 sums in registers, added to the
/// weights' lane sums once per tile.
#[inline(always)]
fn gradient_tile<const FMA: bool>(
    block44: GradBlockFn,
    delta: &[Lane],
    rows: usize,
    input: &[Lane],
    cols: usize,
    gradient: &mut [LaneSums],
) {
    let mut r = 0;
    while r < rows {
        let full_rows = r + GRAD_BLOCK <= rows;
        let mut c = 0;
        while c < cols {
            let full_cols = c + GRAD_BLOCK <= cols;
            match (full_rows, full_cols) {
                (true, true) => block44(delta, r, input, c, cols, gradient),
                (true, false) => {
                    grad_block::<GRAD_BLOCK, 1, FMA>(delta, r, input, c, cols, gradient)
                }
                (false, true) => {
                    grad_block::<1, GRAD_BLOCK, FMA>(delta, r, input, c, cols, gradient)
                }
                (false, false) => grad_block::<1, 1, FMA>(delta, r, input, c, cols, gradient),
            }
            c += if full_cols { GRAD_BLOCK } else { 1 };
        }
        r += if full_rows { GRAD_BLOCK } else { 1 };
    }
}

/// A full square block of [`gradient_tile`], compiled on its own for one instruction set.
type GradBlockFn = fn(&[Lane], usize, &[Lane], usize, usize, &mut [LaneSums]);

// The full blocks are compiled as functions of their own: inlined into the whole tile kernel,
// the compiler keeps their sums in memory and stores them on every pass. The AVX-512 one is
// written with intrinsics: the vectoriser would not keep its 16 sums in registers.

/// [`grad_block`] for a `GRAD_BLOCK x GRAD_BLOCK` block, with AVX-512 intrinsics: 16 vector
/// sums (one per weight, 16 lanes each) that never leave registers, added to the weights'
/// lane sums once per tile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
#[inline(never)]
fn grad_block_avx512(
    d: &[Lane],
    r0: usize,
    a: &[Lane],
    c0: usize,
    cols: usize,
    g: &mut [LaneSums],
) {
    use std::arch::x86_64::{
        __m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_setzero_ps,
        _mm512_storeu_ps,
    };
    const B: usize = GRAD_BLOCK;
    let d_rows: &[Lane] = &d[r0..r0 + B];
    let a_rows: &[Lane] = &a[c0..c0 + B];
    let mut acc: [[__m512; B]; B] = [[_mm512_setzero_ps(); B]; B];
    for at in (0..TILE).step_by(LANES) {
        let mut dv = [_mm512_setzero_ps(); B];
        let mut av = [_mm512_setzero_ps(); B];
        for k in 0..B {
            // SAFETY: `at + LANES <= TILE`, so the 16 values read lie inside the lane.
            dv[k] = unsafe { _mm512_loadu_ps(d_rows[k].as_ptr().add(at)) };
            // SAFETY: as above.
            av[k] = unsafe { _mm512_loadu_ps(a_rows[k].as_ptr().add(at)) };
        }
        for k in 0..B {
            for m in 0..B {
                acc[k][m] = _mm512_fmadd_ps(dv[k], av[m], acc[k][m]);
            }
        }
    }
    for k in 0..B {
        for m in 0..B {
            let sums = &mut g[(r0 + k) * cols + c0 + m];
            // SAFETY: `sums` is 16 f32 long, the width of one vector.
            unsafe {
                let ptr = sums.as_mut_ptr();
                _mm512_storeu_ps(ptr, _mm512_add_ps(_mm512_loadu_ps(ptr), acc[k][m]));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
fn grad_block_avx2(d: &[Lane], r: usize, a: &[Lane], c: usize, cols: usize, g: &mut [LaneSums]) {
    grad_block::<GRAD_BLOCK, GRAD_BLOCK, true>(d, r, a, c, cols, g)
}

#[inline(never)]
fn grad_block_baseline(
    d: &[Lane],
    r: usize,
    a: &[Lane],
    c: usize,
    cols: usize,
    g: &mut [LaneSums],
) {
    grad_block::<GRAD_BLOCK, GRAD_BLOCK, false>(d, r, a, c, cols, g)
}

/// The full-block gradient function for `level`, which must be one this CPU runs.
fn grad_block_for(level: Level) -> GradBlockFn {
    match level {
        // SAFETY (of the call inside): `level` came from `Level::detect` or
        // `Level::available`, so the CPU has the instructions the build uses.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => |d, r, a, c, cols, g| unsafe { grad_block_avx512(d, r, a, c, cols, g) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => |d, r, a, c, cols, g| unsafe { grad_block_avx2(d, r, a, c, cols, g) },
        _ => grad_block_baseline,
    }
}

/// The `RR x RC` block of [`gradient_tile`] at row `r0`, column `c0`.
#[inline(always)]
fn grad_block<const RR: usize, const RC: usize, const FMA: bool>(
    delta: &[Lane],
    r0: usize,
    input: &[Lane],
    c0: usize,
    cols: usize,
    gradient: &mut [LaneSums],
) {
    let mut acc = [[[0.0f32; LANES]; RC]; RR];
    for at in (0..TILE).step_by(LANES) {
        // Copies, not references: with values the compiler keeps the sums in vector
        // registers; through references it falls back to scalar code.
        let mut d = [[0.0f32; LANES]; RR];
        for k in 0..RR {
            d[k] = lanes_at(&delta[r0 + k], at);
        }
        let mut a = [[0.0f32; LANES]; RC];
        for m in 0..RC {
            a[m] = lanes_at(&input[c0 + m], at);
        }
        for k in 0..RR {
            for m in 0..RC {
                for q in 0..LANES {
                    acc[k][m][q] = madd::<FMA>(d[k][q], a[m][q], acc[k][m][q]);
                }
            }
        }
    }
    for k in 0..RR {
        for m in 0..RC {
            let sums = &mut gradient[(r0 + k) * cols + c0 + m];
            for q in 0..LANES {
                sums[q] += acc[k][m][q];
            }
        }
    }
}

/// The `LANES` values of `lane` starting at `at`.
#[inline(always)]
fn lanes_at(lane: &Lane, at: usize) -> [f32; LANES] {
    *<&[f32; LANES]>::try_from(&lane[at..at + LANES]).expect("the slice is LANES long")
}

/// Sum of the lanes, pairwise. Halves of fixed size rather than a loop over a shrinking
/// width: every index is then a constant, so the sums it reads can stay in registers.
#[inline(always)]
fn lane_sum(v: [f32; LANES]) -> f32 {
    let mut h8 = [0.0f32; 8];
    for q in 0..8 {
        h8[q] = v[q] + v[q + 8];
    }
    let mut h4 = [0.0f32; 4];
    for q in 0..4 {
        h4[q] = h8[q] + h8[q + 4];
    }
    (h4[0] + h4[2]) + (h4[1] + h4[3])
}

/// `out = act(W a + b)` for one tile.
#[inline(always)]
fn forward_layer<const FMA: bool>(
    wide: Option<RowsBlockFn>,
    layer: &LayerPlan,
    plan: &KernelLayout,
    input: &[Lane],
    out: &mut [Lane],
) {
    // W column by column is W transposed.
    let w = &plan.transposed[layer.weights..][..layer.nodes * layer.inputs];
    let bias = layer.bias.map(|o| &plan.params[o..o + layer.nodes]);
    matmul_tile::<FMA>(wide, w, layer.nodes, layer.inputs, bias, input, out);
    if layer.activation == Activation::Relu {
        for z in out.iter_mut().take(layer.nodes) {
            for v in z.iter_mut() {
                *v = keep_if_positive(*v, *v);
            }
        }
    }
}

#[inline(always)]
fn forward_tile<const FMA: bool>(
    wide: Option<RowsBlockFn>,
    plan: &KernelLayout,
    acts: &mut [Vec<Lane>],
) {
    for (l, layer) in plan.layers.iter().enumerate() {
        let (below, above) = acts.split_at_mut(l + 1);
        forward_layer::<FMA>(wide, layer, plan, &below[l], &mut above[0]);
    }
}

/// Forward, error and backward pass for one tile of `len` points starting at `start`;
/// returns the tile's SSE and adds its gradient to `gradient`.
#[inline(always)]
fn tile<const FMA: bool>(
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
    forward_tile::<FMA>(scratch.rows_block, plan, &mut scratch.acts);

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
        let weights = &mut scratch.weight_sums[layer.weights..][..layer.nodes * layer.inputs];
        gradient_tile::<FMA>(
            scratch.grad_block,
            &scratch.delta,
            layer.nodes,
            input,
            layer.inputs,
            weights,
        );
        if let Some(o) = layer.bias {
            for j in 0..layer.nodes {
                gradient[o + j] += f64::from(sum(&scratch.delta[j]));
            }
        }
        if l == 0 {
            break;
        }
        // Chain back through the weights (W^T, given column by column: W as stored) and the
        // activation of the layer below.
        let w_t = &plan.params[layer.weights..][..layer.nodes * layer.inputs];
        let back = &mut scratch.delta_below;
        let wide = scratch.rows_block;
        matmul_tile::<FMA>(
            wide,
            w_t,
            layer.inputs,
            layer.nodes,
            None,
            &scratch.delta,
            back,
        );
        if plan.layers[l - 1].activation == Activation::Relu {
            for i in 0..layer.inputs {
                keep_where_positive(&mut back[i], &input[i]);
            }
        }
        std::mem::swap(&mut scratch.delta, &mut scratch.delta_below);
    }
    sse
}

/// The SSE of points `start..end`, adding their gradient to `gradient`.
#[inline(always)]
fn block_body<const FMA: bool>(
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
        sse += tile::<FMA>(plan, scratch, columns, tile_start, len, gradient);
    }
    for (g, sums) in gradient.iter_mut().zip(scratch.weight_sums.iter_mut()) {
        *g += f64::from(lane_sum(*sums));
        *sums = [0.0; LANES];
    }
    sse
}

/// The AVX-512 and AVX2 builds of an `#[inline(always)]` body that is generic over FMA: the
/// same loops compiled twice with different target features, picked at run time by [`Level`]
/// (by hand, not with the multiversion crate: see `small.rs`). The loops are written for the
/// vectoriser; wider vectors and FMA are where the speed comes from.
macro_rules! simd_builds {
    ($avx512:ident, $avx2:ident, $body:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
        fn $avx512($($arg: $ty),*) -> $ret {
            $body::<true>($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $avx2($($arg: $ty),*) -> $ret {
            $body::<true>($($arg),*)
        }
    };
}

simd_builds!(block_avx512, block_avx2, block_body, (
    plan: &KernelLayout,
    scratch: &mut Scratch,
    columns: &[&[f32]],
    start: usize,
    end: usize,
    gradient: &mut [f64]
) -> f64);

/// [`block_body`] built for `level`, which must be one this CPU runs.
fn block_sse(
    level: Level,
    plan: &KernelLayout,
    scratch: &mut Scratch,
    columns: &[&[f32]],
    start: usize,
    end: usize,
    gradient: &mut [f64],
) -> f64 {
    match level {
        // SAFETY: `level` came from `Level::detect` (or `Level::available`), so the CPU has
        // the instructions this build uses.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { block_avx512(plan, scratch, columns, start, end, gradient) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { block_avx2(plan, scratch, columns, start, end, gradient) },
        _ => block_body::<false>(plan, scratch, columns, start, end, gradient),
    }
}

/// The SSE of every network in `layouts` (all of one shape) over points `start..end`, added
/// to `sums`: each tile is loaded once and run forward through every network.
#[inline(always)]
fn many_body<const FMA: bool>(
    layouts: &[KernelLayout],
    scratch: &mut Scratch,
    columns: &[&[f32]],
    start: usize,
    end: usize,
    sums: &mut [f64],
) {
    let inputs = layouts[0].widths[0];
    let outputs = layouts[0].outputs();
    let last = layouts[0].layers.len();
    for tile_start in (start..end).step_by(TILE) {
        let len = TILE.min(end - tile_start);
        load(&mut scratch.acts[0], &columns[..inputs], tile_start, len);
        load(
            &mut scratch.delta_below[..outputs],
            &columns[inputs..],
            tile_start,
            len,
        );
        for (plan, sum) in layouts.iter().zip(sums.iter_mut()) {
            forward_tile::<FMA>(scratch.rows_block, plan, &mut scratch.acts);
            for k in 0..outputs {
                let error = &mut scratch.delta[k];
                let (prediction, target) = (&scratch.acts[last][k], &scratch.delta_below[k]);
                for q in 0..TILE {
                    error[q] = prediction[q] - target[q];
                }
                error[len..].fill(0.0); // padded points contribute nothing
                *sum += f64::from(dot(error, error));
            }
        }
    }
}

simd_builds!(many_avx512, many_avx2, many_body, (
    layouts: &[KernelLayout],
    scratch: &mut Scratch,
    columns: &[&[f32]],
    start: usize,
    end: usize,
    sums: &mut [f64]
) -> ());

/// The SSE of each of `nets` (all of one shape) over `data`, in one parallel pass over the
/// points: the loss landscape's many parameter vectors read the data once, not once each.
pub fn sse_of_many(nets: &[Network], data: &Dataset) -> Vec<f64> {
    if nets.is_empty() {
        return Vec::new();
    }
    let layouts: Vec<KernelLayout> = nets.iter().map(KernelLayout::new).collect();
    let columns = data.column_slices();
    let points = data.len();
    let level = Level::detect();
    let partials: Vec<Vec<f64>> = (0..points.div_ceil(BLOCK))
        .into_par_iter()
        .map_init(
            || Scratch::new(&layouts[0], level),
            |scratch, block| {
                let (start, end) = block_range(block, points);
                let mut sums = vec![0.0; layouts.len()];
                match level {
                    // SAFETY: `level` came from `Level::detect`.
                    #[cfg(target_arch = "x86_64")]
                    Level::Avx512 => unsafe {
                        many_avx512(&layouts, scratch, &columns, start, end, &mut sums)
                    },
                    // SAFETY: as above.
                    #[cfg(target_arch = "x86_64")]
                    Level::Avx2 => unsafe {
                        many_avx2(&layouts, scratch, &columns, start, end, &mut sums)
                    },
                    _ => many_body::<false>(&layouts, scratch, &columns, start, end, &mut sums),
                }
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
        let level = self.level;
        (0..points.div_ceil(BLOCK))
            .into_par_iter()
            .map_init(
                || Scratch::new(&plan, level),
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
                        None => block_sse(
                            level,
                            &plan,
                            scratch,
                            &columns,
                            start,
                            end,
                            &mut partial.gradient,
                        ),
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
                || Scratch::new(&plan, Level::Baseline),
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
        forward_tile::<false>(scratch.rows_block, plan, &mut scratch.acts);
        for (k, mut row) in out.rows_mut().into_iter().enumerate() {
            let local = tile_start - start;
            for q in 0..len {
                row[local + q] = scratch.acts[last][k][q];
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
    /// 4x4 blocks and their remainders, at sizes that end mid-tile and mid-block.
    #[test]
    fn every_available_build_matches_the_reference() {
        for widths in [&[9usize, 17, 12, 2][..], &[8, 64, 8, 1], &[3, 5, 2]] {
            let teacher = Network::random(widths, Activation::Relu, true, 1).unwrap();
            let student = Network::random(widths, Activation::Relu, true, 2).unwrap();
            for points in [1, TILE + 3, BLOCK + 5] {
                let set = data::generate(&teacher, points, 0.1, 3).unwrap();
                let want = Reference.evaluate(&student, &set);
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
                }
            }
        }
    }
}

//! The general kernel's toolbox: a tile of [`TILE`] points held structure-of-arrays (one
//! [`Lane`] per node), and the products a layer needs over a tile (weights times activations,
//! and the per-lane gradient sums of deltas times activations), blocked so that their sums
//! stay in registers while each input is loaded once.

// Index loops mirror the math (`z[j] += w[j][i] * a[i]`) and are the shape the vectoriser
// handles best; iterator chains over several arrays at once would obscure both.
#![allow(clippy::needless_range_loop)]

#[cfg(target_arch = "x86_64")]
use super::avx512;
use super::simd::{madd, pairwise_sum, Isa, SimdJob};

/// Points per tile (a power of two, for the pairwise sums).
pub(super) const TILE: usize = 256;

/// One node's values over a tile.
pub(super) type Lane = [f32; TILE];

/// Rows of a weight matrix taken together in the products: their sums over a run of points
/// stay in registers while each input value is loaded once.
const ROWS: usize = 4;
/// Rows and columns of the weight blocks whose per-lane gradient sums stay in registers.
const GRAD_BLOCK: usize = 4;
/// Points per register block in the matrix-times-tile products (two AVX-512 registers).
const RUN: usize = 32;
/// Lanes of the per-weight partial sums in the gradient products (one AVX-512 register).
pub(super) const LANES: usize = 16;
#[cfg(target_arch = "x86_64")]
const _: () = assert!(avx512::BLOCK == GRAD_BLOCK && avx512::LANES_OF_SUMS == LANES);

/// One weight's per-lane f32 gradient sums.
pub(super) type LaneSums = [f32; LANES];

/// Sum of `a[q] * b[q]`: the products, then a pairwise sum. Both steps are element-wise loops
/// that vectorise, unlike a running sum.
#[inline(always)]
pub(super) fn dot(a: &Lane, b: &Lane) -> f32 {
    let mut products = [0.0f32; TILE];
    for q in 0..TILE {
        products[q] = a[q] * b[q];
    }
    pairwise_sum(&products)
}

/// `out[r] = bias[r] + sum_c w[r][c] * input[c]` for one tile, with `w` given column by
/// column (`w_by_col[c * rows + r]`), so the weights one input meets are side by side.
#[inline(always)]
pub(super) fn matmul_tile<S: Isa>(
    isa: S,
    w_by_col: &[f32],
    rows: usize,
    cols: usize,
    bias: Option<&[f32]>,
    input: &[Lane],
    out: &mut [Lane],
) {
    let mut r = 0;
    #[cfg(target_arch = "x86_64")]
    if let Some(proof) = isa.avx512() {
        while r + avx512::ROWS <= rows {
            avx512::rows8(proof, w_by_col, r, rows, cols, bias, input, out);
            r += avx512::ROWS;
        }
    }
    let _ = isa;
    while r + ROWS <= rows {
        rows_block::<ROWS, S>(w_by_col, r, rows, cols, bias, input, out);
        r += ROWS;
    }
    while r < rows {
        rows_block::<1, S>(w_by_col, r, rows, cols, bias, input, out);
        r += 1;
    }
}

/// Rows `first..first + R` of [`matmul_tile`], one run of points at a time.
#[inline(always)]
fn rows_block<const R: usize, S: Isa>(
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
                    acc[k][q] = madd::<S>(wc[k], a[q], acc[k][q]);
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
pub(super) fn gradient_tile<S: Isa>(
    isa: S,
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
                (true, true) => full_grad_block(isa, delta, r, input, c, cols, gradient),
                (true, false) => grad_block::<GRAD_BLOCK, 1, S>(delta, r, input, c, cols, gradient),
                (false, true) => grad_block::<1, GRAD_BLOCK, S>(delta, r, input, c, cols, gradient),
                (false, false) => grad_block::<1, 1, S>(delta, r, input, c, cols, gradient),
            }
            c += if full_cols { GRAD_BLOCK } else { 1 };
        }
        r += if full_rows { GRAD_BLOCK } else { 1 };
    }
}

/// A full `GRAD_BLOCK x GRAD_BLOCK` block of [`gradient_tile`], compiled on its own: inlined
/// into the whole tile kernel, the compiler keeps its sums in memory and stores them on every
/// pass. With AVX-512 it is written with intrinsics, the vectoriser would not keep its 16
/// sums in registers.
#[inline(always)]
fn full_grad_block<S: Isa>(
    isa: S,
    delta: &[Lane],
    r0: usize,
    input: &[Lane],
    c0: usize,
    cols: usize,
    gradient: &mut [LaneSums],
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(proof) = isa.avx512() {
        return avx512::grad_block(proof, delta, r0, input, c0, cols, gradient);
    }
    isa.run(FullGradBlock {
        delta,
        r0,
        input,
        c0,
        cols,
        gradient,
    })
}

struct FullGradBlock<'a> {
    delta: &'a [Lane],
    r0: usize,
    input: &'a [Lane],
    c0: usize,
    cols: usize,
    gradient: &'a mut [LaneSums],
}

impl SimdJob for FullGradBlock<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Isa>(self, _: S) {
        grad_block::<GRAD_BLOCK, GRAD_BLOCK, S>(
            self.delta,
            self.r0,
            self.input,
            self.c0,
            self.cols,
            self.gradient,
        )
    }
}

/// The `RR x RC` block of [`gradient_tile`] at row `r0`, column `c0`.
#[inline(always)]
fn grad_block<const RR: usize, const RC: usize, S: Isa>(
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
                    acc[k][m][q] = madd::<S>(d[k][q], a[m][q], acc[k][m][q]);
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

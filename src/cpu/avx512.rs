//! The two tile products the vectoriser does not keep in registers by itself, written with
//! AVX-512 intrinsics for tiles of any `N` points (a multiple of 32). Each takes the
//! [`Avx512`] proof, so calling it is safe.

use std::arch::x86_64::{
    __m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
    _mm512_storeu_ps,
};

use super::simd::Avx512;

/// f32 per register.
const V: usize = 16;
/// Rows of [`rows8`]'s block.
pub(super) const ROWS: usize = 8;
/// Rows and columns of [`grad_block`]'s block.
pub(super) const BLOCK: usize = 4;
/// Lanes of each weight's gradient sums in [`grad_block`]: one register.
pub(super) const LANES_OF_SUMS: usize = V;

/// Rows `first..first + 8` of `tile::matmul_tile`: 8 rows x 32 points of sums (16 registers)
/// per pass over the inputs, so each loaded input vector feeds 8 multiply-adds.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn rows8<const N: usize>(
    _: Avx512,
    w_by_col: &[f32],
    first: usize,
    rows: usize,
    cols: usize,
    bias: Option<&[f32]>,
    input: &[[f32; N]],
    out: &mut [[f32; N]],
) {
    // SAFETY: the `Avx512` proof says the CPU has these instructions.
    unsafe { rows8_build(w_by_col, first, rows, cols, bias, input, out) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
#[inline(never)]
fn rows8_build<const N: usize>(
    w_by_col: &[f32],
    first: usize,
    rows: usize,
    cols: usize,
    bias: Option<&[f32]>,
    input: &[[f32; N]],
    out: &mut [[f32; N]],
) {
    const R: usize = ROWS;
    const { assert!(N.is_multiple_of(2 * V)) };
    let input = &input[..cols];
    let w = &w_by_col[..cols * rows];
    assert!(first + R <= rows, "the block lies inside the matrix");
    let mut b = [0.0f32; R];
    if let Some(bias) = bias {
        b.copy_from_slice(&bias[first..first + R]);
    }
    for at in (0..N).step_by(2 * V) {
        let mut acc: [[__m512; 2]; R] = [[_mm512_set1_ps(0.0); 2]; R];
        for k in 0..R {
            acc[k] = [_mm512_set1_ps(b[k]); 2];
        }
        for (c, lane) in input.iter().enumerate() {
            // SAFETY: `at + 2 * V <= N`, so both vectors lie inside the lane.
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

/// A full `BLOCK x BLOCK` block of `tile::gradient_tile`: 16 vector sums (one per
/// weight, 16 lanes each) that never leave registers, added to the weights' lane sums once
/// per tile.
#[inline(always)]
pub(super) fn grad_block<const N: usize>(
    _: Avx512,
    d: &[[f32; N]],
    r0: usize,
    a: &[[f32; N]],
    c0: usize,
    cols: usize,
    g: &mut [[f32; V]],
) {
    // SAFETY: the `Avx512` proof says the CPU has these instructions.
    unsafe { grad_block_build(d, r0, a, c0, cols, g) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
#[inline(never)]
fn grad_block_build<const N: usize>(
    d: &[[f32; N]],
    r0: usize,
    a: &[[f32; N]],
    c0: usize,
    cols: usize,
    g: &mut [[f32; V]],
) {
    const B: usize = BLOCK;
    const { assert!(N.is_multiple_of(V)) };
    let d_rows = &d[r0..r0 + B];
    let a_rows = &a[c0..c0 + B];
    let mut acc: [[__m512; B]; B] = [[_mm512_setzero_ps(); B]; B];
    for at in (0..N).step_by(V) {
        let mut dv = [_mm512_setzero_ps(); B];
        let mut av = [_mm512_setzero_ps(); B];
        for k in 0..B {
            // SAFETY: `at + V <= N`, so the 16 values read lie inside the lane.
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

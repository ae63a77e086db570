//! The CPU's vector instruction sets as types, and the one way a kernel is built for them.
//!
//! A kernel's body is written once, generic over an [`Isa`], with `#[inline(always)]` loops the
//! vectoriser turns into vector code. [`Isa::run`] compiles a [`SimdJob`] for one instruction
//! set (a function with those target features, into which the body is inlined) and runs it.
//! The values of the instruction-set types are proofs: [`Avx512`] and [`Avx2`] can only be made
//! inside [`Level::run`], and a [`Level`] only by detection, so no build ever runs on a CPU
//! that lacks its instructions, and no caller needs `unsafe` to pick one.

/// An instruction set a kernel is built for. Its value proves the CPU has it.
pub(super) trait Isa: Copy {
    /// Whether `a * b + c` is one fused instruction (a software `mul_add` would be slow).
    const FMA: bool;
    /// f32 per vector register.
    const LANES: usize;
    /// Compiles `job` for this instruction set, on its own (not inlined into the caller), and
    /// runs it.
    fn run<J: SimdJob>(self, job: J) -> J::Output;
    /// The proof of AVX-512, for the kernels written with its intrinsics.
    #[inline(always)]
    fn avx512(self) -> Option<Avx512> {
        None
    }
}

/// Work to compile for each instruction set: `run`'s body must be `#[inline(always)]` (as must
/// everything it calls that should use the wider instructions).
pub(super) trait SimdJob {
    type Output;
    fn run<S: Isa>(self, isa: S) -> Self::Output;
}

/// AVX-512 (F, BW, DQ, VL) with FMA: 32 registers of 16 f32.
#[derive(Clone, Copy, Debug)]
pub(super) struct Avx512(());

/// AVX2 with FMA: 16 registers of 8 f32.
#[derive(Clone, Copy, Debug)]
pub(super) struct Avx2(());

/// What the compilation target guarantees (SSE2 on x86_64).
#[derive(Clone, Copy, Debug)]
pub(super) struct Baseline;

impl Isa for Avx512 {
    const FMA: bool = true;
    const LANES: usize = 16;

    #[inline(always)]
    fn run<J: SimdJob>(self, job: J) -> J::Output {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
        #[inline(never)]
        fn build<J: SimdJob>(isa: Avx512, job: J) -> J::Output {
            job.run(isa)
        }
        #[cfg(not(target_arch = "x86_64"))]
        fn build<J: SimdJob>(isa: Avx512, job: J) -> J::Output {
            job.run(isa)
        }
        // SAFETY: an `Avx512` is only made where detection found these features.
        #[allow(unused_unsafe)]
        unsafe {
            build(self, job)
        }
    }

    #[inline(always)]
    fn avx512(self) -> Option<Avx512> {
        Some(self)
    }
}

impl Isa for Avx2 {
    const FMA: bool = true;
    const LANES: usize = 8;

    #[inline(always)]
    fn run<J: SimdJob>(self, job: J) -> J::Output {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        #[inline(never)]
        fn build<J: SimdJob>(isa: Avx2, job: J) -> J::Output {
            job.run(isa)
        }
        #[cfg(not(target_arch = "x86_64"))]
        fn build<J: SimdJob>(isa: Avx2, job: J) -> J::Output {
            job.run(isa)
        }
        // SAFETY: an `Avx2` is only made where detection found these features.
        #[allow(unused_unsafe)]
        unsafe {
            build(self, job)
        }
    }
}

impl Isa for Baseline {
    const FMA: bool = false;
    const LANES: usize = 4;

    #[inline(always)]
    fn run<J: SimdJob>(self, job: J) -> J::Output {
        #[inline(never)]
        fn build<J: SimdJob>(isa: Baseline, job: J) -> J::Output {
            job.run(isa)
        }
        build(self, job)
    }
}

/// The instruction set a kernel build targets, as found on this CPU. Only detection makes one
/// (the variants are private), which is what makes [`Level::run`] safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Level(Found);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Found {
    Baseline,
    Avx2,
    Avx512,
}

impl Level {
    /// The widest level this CPU runs, or a narrower one named by `DOWNHILL_CPU_BUILD`
    /// (`avx512`, `avx2`, `baseline`: to measure each build on a machine; a level the CPU
    /// lacks is never used).
    pub(super) fn detect() -> Level {
        Level::forced().unwrap_or_else(Level::widest)
    }

    /// The level `DOWNHILL_CPU_BUILD` names, or the widest below it this CPU runs.
    pub(super) fn forced() -> Option<Level> {
        let asked = match std::env::var("DOWNHILL_CPU_BUILD").ok()?.as_str() {
            "avx512" => Found::Avx512,
            "avx2" => Found::Avx2,
            "baseline" => Found::Baseline,
            _ => return None,
        };
        Some(Level(asked.min(Level::widest().0)))
    }

    /// The widest level this CPU runs.
    fn widest() -> Level {
        Level::available()
            .pop()
            .expect("the baseline is always available")
    }

    /// Every level this CPU runs, narrowest first.
    pub(super) fn available() -> Vec<Level> {
        let mut levels = vec![Level(Found::Baseline)];
        #[cfg(target_arch = "x86_64")]
        {
            use std::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") {
                levels.push(Level(Found::Avx2));
                if has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vl") {
                    levels.push(Level(Found::Avx512));
                }
            }
        }
        levels
    }

    /// f32 per vector register.
    pub(super) fn lanes(self) -> usize {
        match self.0 {
            Found::Avx512 => Avx512::LANES,
            Found::Avx2 => Avx2::LANES,
            Found::Baseline => Baseline::LANES,
        }
    }

    /// Runs `job` built for this level.
    pub(super) fn run<J: SimdJob>(self, job: J) -> J::Output {
        match self.0 {
            Found::Avx512 => Avx512(()).run(job),
            Found::Avx2 => Avx2(()).run(job),
            Found::Baseline => Baseline.run(job),
        }
    }
}

/// `a * b + c`, as one fused instruction where the build has FMA.
#[inline(always)]
pub(super) fn madd<S: Isa>(a: f32, b: f32, c: f32) -> f32 {
    if S::FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `v` where `a > 0`, else 0: the ReLU (`a` = `v`) and its slope (`a` the activation). A bit
/// mask, because `max` (NaN rules) and a plain `if` (a branch per value) do not vectorise.
#[inline(always)]
pub(super) fn keep_if_positive(v: f32, a: f32) -> f32 {
    f32::from_bits(v.to_bits() & 0u32.wrapping_sub(u32::from(a > 0.0)))
}

/// [`keep_if_positive`] over a row of values.
#[inline(always)]
pub(super) fn keep_where_positive<const N: usize>(v: &mut [f32; N], a: &[f32; N]) {
    for q in 0..N {
        v[q] = keep_if_positive(v[q], a[q]);
    }
}

/// The sum of a row, pairwise: halves of constant size (every index a constant, so the values
/// can stay in registers) and `log2(N)` additions deep, which keeps the f32 rounding small.
#[inline(always)]
pub(super) fn pairwise_sum<const N: usize>(v: &[f32; N]) -> f32 {
    const { assert!(N.is_power_of_two()) };
    let mut t = *v;
    let mut width = N;
    while width > 1 {
        width /= 2;
        for q in 0..width {
            t[q] += t[q + width];
        }
    }
    t[0]
}

/// Copies `len` values of each column from `start` into the rows, zero-padding the rest (a
/// short last group). A full group takes the fixed-size path: a few vector moves.
#[inline(always)]
pub(super) fn load_padded<const N: usize>(
    rows: &mut [[f32; N]],
    columns: &[&[f32]],
    start: usize,
    len: usize,
) {
    for (row, column) in rows.iter_mut().zip(columns) {
        if len == N {
            let full: &[f32; N] = column[start..start + N]
                .try_into()
                .expect("the slice is N long");
            *row = *full;
        } else {
            row[..len].copy_from_slice(&column[start..start + len]);
            row[len..].fill(0.0);
        }
    }
}

/// [`load_padded`] into fresh rows, returned by value (the small kernel's registers): the
/// padding is already zero, and a group built this way compiles to less than one zeroed and
/// then filled (measured: 30% of the 2-2-1 step).
#[inline(always)]
pub(super) fn loaded<const N: usize, const M: usize>(
    columns: &[&[f32]],
    start: usize,
    len: usize,
) -> [[f32; N]; M] {
    let mut rows = [[0.0; N]; M];
    for (row, column) in rows.iter_mut().zip(columns) {
        if len == N {
            let full: &[f32; N] = column[start..start + N]
                .try_into()
                .expect("the slice is N long");
            *row = *full;
        } else {
            row[..len].copy_from_slice(&column[start..start + len]);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sum<'a>(&'a [f32]);

    impl SimdJob for Sum<'_> {
        type Output = f32;
        #[inline(always)]
        fn run<S: Isa>(self, _: S) -> f32 {
            self.0.iter().fold(0.0, |acc, &v| madd::<S>(v, 2.0, acc))
        }
    }

    #[test]
    fn every_available_level_runs_a_job_alike() {
        let values: Vec<f32> = (0..100).map(|v| v as f32).collect();
        for level in Level::available() {
            assert_eq!(level.run(Sum(&values)), 9900.0, "{level:?}");
        }
        assert!(Level::available().contains(&Level::detect()));
    }

    #[test]
    fn the_helpers_mask_sum_and_pad() {
        let mut v = [1.0f32, -2.0, 3.0, 4.0];
        keep_where_positive(&mut v, &[1.0, 1.0, 0.0, -1.0]);
        assert_eq!(v, [1.0, -2.0, 0.0, 0.0]);
        assert_eq!(pairwise_sum(&[1.0f32, 2.0, 3.0, 4.0]), 10.0);
        let mut rows = [[9.0f32; 4]; 2];
        let (a, b) = ([1.0f32, 2.0, 3.0], [4.0f32, 5.0, 6.0]);
        load_padded(&mut rows, &[&a, &b], 1, 2);
        assert_eq!(rows, [[2.0, 3.0, 0.0, 0.0], [5.0, 6.0, 0.0, 0.0]]);
        assert_eq!(loaded::<4, 2>(&[&a, &b], 1, 2), rows);
    }
}

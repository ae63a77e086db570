//! The CPU's vector instruction sets as types, and the one way a kernel is built for them.
//!
//! A kernel's body is written once, generic over an [`Isa`], with `#[inline(always)]` loops the
//! vectoriser turns into vector code. [`Isa::run`] compiles a [`SimdJob`] for one instruction
//! set (a function with those target features, into which the body is inlined) and runs it.
//! The values of the instruction-set types are proofs: [`Avx512`] and [`Avx2`] can only be made
//! inside [`Level::run`], and a [`Level`] only by detection, so no build ever runs on a CPU
//! that lacks its instructions, and no caller needs `unsafe` to pick one.

/// An instruction set a kernel is built for. Its value proves the CPU has it.
///
/// [`Isa::F32s`] is one vector register of f32 with the few operations the register-resident
/// small kernel needs: values of it are SSA values the compiler keeps in registers, where
/// arrays of f32 (even when vectorised) stay in memory and every accumulation waits on a
/// store.
pub(super) trait Isa: Copy {
    /// Whether `a * b + c` is one fused instruction (a software `mul_add` would be slow).
    const FMA: bool;
    /// f32 per vector register.
    const LANES: usize;
    /// One register of `LANES` f32.
    type F32s: Copy;
    /// Every lane `v`.
    fn splat(self, v: f32) -> Self::F32s;
    /// `LANES` values from `values[at..]` (which must hold them).
    fn load(self, values: &[f32], at: usize) -> Self::F32s;
    fn add(self, a: Self::F32s, b: Self::F32s) -> Self::F32s;
    fn sub(self, a: Self::F32s, b: Self::F32s) -> Self::F32s;
    fn mul(self, a: Self::F32s, b: Self::F32s) -> Self::F32s;
    /// `a * b + c`, fused where the instruction set has FMA.
    fn mul_add(self, a: Self::F32s, b: Self::F32s, c: Self::F32s) -> Self::F32s;
    /// `v` in the lanes where `a > 0`, else 0 (the ReLU and its slope).
    fn keep_where_positive(self, v: Self::F32s, a: Self::F32s) -> Self::F32s;
    /// The sum of the lanes, pairwise in f32.
    fn sum(self, v: Self::F32s) -> f32;
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

/// The register operations on plain arrays of `N` f32: the baseline's (which the compiler
/// vectorises with SSE2), and the x86 types' stand-ins where they cannot exist.
macro_rules! array_ops {
    ($n:literal) => {
        #[inline(always)]
        fn splat(self, v: f32) -> [f32; $n] {
            [v; $n]
        }
        #[inline(always)]
        fn load(self, values: &[f32], at: usize) -> [f32; $n] {
            *<&[f32; $n]>::try_from(&values[at..at + $n]).expect("the slice is N long")
        }
        #[inline(always)]
        fn add(self, a: [f32; $n], b: [f32; $n]) -> [f32; $n] {
            std::array::from_fn(|l| a[l] + b[l])
        }
        #[inline(always)]
        fn sub(self, a: [f32; $n], b: [f32; $n]) -> [f32; $n] {
            std::array::from_fn(|l| a[l] - b[l])
        }
        #[inline(always)]
        fn mul(self, a: [f32; $n], b: [f32; $n]) -> [f32; $n] {
            std::array::from_fn(|l| a[l] * b[l])
        }
        #[inline(always)]
        fn mul_add(self, a: [f32; $n], b: [f32; $n], c: [f32; $n]) -> [f32; $n] {
            std::array::from_fn(|l| madd::<Self>(a[l], b[l], c[l]))
        }
        #[inline(always)]
        fn keep_where_positive(self, v: [f32; $n], a: [f32; $n]) -> [f32; $n] {
            std::array::from_fn(|l| keep_if_positive(v[l], a[l]))
        }
        #[inline(always)]
        fn sum(self, v: [f32; $n]) -> f32 {
            pairwise_sum(&v)
        }
    };
}

/// The register operations with the intrinsics of `avx512` or `avx2`. Each is an `unsafe`
/// call made safe by `self`, the proof that the CPU has the instructions.
#[cfg(target_arch = "x86_64")]
macro_rules! x86_ops {
    (avx512) => {
        x86_ops!(@ops 16,
            _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps,
            _mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps, _mm512_fmadd_ps);
        #[inline(always)]
        fn keep_where_positive(self, v: Self::F32s, a: Self::F32s) -> Self::F32s {
            use std::arch::x86_64::*;
            // SAFETY: `self` proves the CPU has AVX-512.
            unsafe {
                let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, _mm512_setzero_ps());
                _mm512_maskz_mov_ps(positive, v)
            }
        }
    };
    (avx2) => {
        x86_ops!(@ops 8,
            _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps,
            _mm256_add_ps, _mm256_sub_ps, _mm256_mul_ps, _mm256_fmadd_ps);
        #[inline(always)]
        fn keep_where_positive(self, v: Self::F32s, a: Self::F32s) -> Self::F32s {
            use std::arch::x86_64::*;
            // SAFETY: `self` proves the CPU has AVX2.
            unsafe { _mm256_and_ps(v, _mm256_cmp_ps::<_CMP_GT_OQ>(a, _mm256_setzero_ps())) }
        }
    };
    (@ops $n:literal, $set1:ident, $loadu:ident, $storeu:ident,
     $add:ident, $sub:ident, $mul:ident, $fmadd:ident) => {
        #[inline(always)]
        fn splat(self, v: f32) -> Self::F32s {
            // SAFETY: `self` proves the CPU has the instruction.
            unsafe { std::arch::x86_64::$set1(v) }
        }
        #[inline(always)]
        fn load(self, values: &[f32], at: usize) -> Self::F32s {
            let lanes = &values[at..at + $n];
            // SAFETY: `self` proves the CPU has the instruction; `lanes` holds the values read.
            unsafe { std::arch::x86_64::$loadu(lanes.as_ptr()) }
        }
        #[inline(always)]
        fn add(self, a: Self::F32s, b: Self::F32s) -> Self::F32s {
            // SAFETY: `self` proves the CPU has the instruction.
            unsafe { std::arch::x86_64::$add(a, b) }
        }
        #[inline(always)]
        fn sub(self, a: Self::F32s, b: Self::F32s) -> Self::F32s {
            // SAFETY: `self` proves the CPU has the instruction.
            unsafe { std::arch::x86_64::$sub(a, b) }
        }
        #[inline(always)]
        fn mul(self, a: Self::F32s, b: Self::F32s) -> Self::F32s {
            // SAFETY: `self` proves the CPU has the instruction.
            unsafe { std::arch::x86_64::$mul(a, b) }
        }
        #[inline(always)]
        fn mul_add(self, a: Self::F32s, b: Self::F32s, c: Self::F32s) -> Self::F32s {
            // SAFETY: `self` proves the CPU has the instruction.
            unsafe { std::arch::x86_64::$fmadd(a, b, c) }
        }
        #[inline(always)]
        fn sum(self, v: Self::F32s) -> f32 {
            let mut lanes = [0.0f32; $n];
            // SAFETY: `self` proves the CPU has the instruction; `lanes` holds the values
            // written.
            unsafe { std::arch::x86_64::$storeu(lanes.as_mut_ptr(), v) };
            pairwise_sum(&lanes)
        }
    };
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
    #[cfg(target_arch = "x86_64")]
    type F32s = std::arch::x86_64::__m512;
    #[cfg(not(target_arch = "x86_64"))]
    type F32s = [f32; 16];
    #[cfg(target_arch = "x86_64")]
    x86_ops!(avx512);
    #[cfg(not(target_arch = "x86_64"))]
    array_ops!(16);

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
    #[cfg(target_arch = "x86_64")]
    type F32s = std::arch::x86_64::__m256;
    #[cfg(not(target_arch = "x86_64"))]
    type F32s = [f32; 8];
    #[cfg(target_arch = "x86_64")]
    x86_ops!(avx2);
    #[cfg(not(target_arch = "x86_64"))]
    array_ops!(8);

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
    type F32s = [f32; 4];
    array_ops!(4);

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
            other => {
                log::warn!(
                    "DOWNHILL_CPU_BUILD={other:?} is not a build (avx512, avx2 or baseline); \
                     choosing as if it were not set"
                );
                return None;
            }
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

    /// Each register operation, on every level this CPU runs, against the same arithmetic
    /// lane by lane.
    struct Ops<'a>(&'a [f32], &'a [f32], &'a [f32]);

    impl SimdJob for Ops<'_> {
        type Output = [f32; 6];
        #[inline(always)]
        fn run<S: Isa>(self, isa: S) -> [f32; 6] {
            let (a, b, c) = (
                isa.load(self.0, 1),
                isa.load(self.1, 1),
                isa.load(self.2, 1),
            );
            [
                isa.sum(isa.mul_add(a, b, c)),
                isa.sum(isa.sub(a, b)),
                isa.sum(isa.mul(a, isa.add(b, isa.splat(1.0)))),
                isa.sum(isa.keep_where_positive(a, b)),
                isa.sum(isa.keep_where_positive(a, a)),
                S::LANES as f32,
            ]
        }
    }

    #[test]
    fn every_register_operation_matches_the_lane_by_lane_arithmetic() {
        let a: Vec<f32> = (0..17).map(|v| v as f32 * 0.5 - 4.0).collect();
        let b: Vec<f32> = (0..17).map(|v| 3.0 - v as f32 * 0.25).collect();
        let c: Vec<f32> = (0..17).map(|v| (v % 5) as f32).collect();
        for level in Level::available() {
            let got = level.run(Ops(&a, &b, &c));
            let n = got[5] as usize;
            assert_eq!(n, level.lanes());
            let lanes = 1..1 + n;
            let sum = |f: &dyn Fn(usize) -> f32| lanes.clone().map(f).sum::<f32>();
            let want = [
                sum(&|l| a[l] * b[l] + c[l]),
                sum(&|l| a[l] - b[l]),
                sum(&|l| a[l] * (b[l] + 1.0)),
                sum(&|l| if b[l] > 0.0 { a[l] } else { 0.0 }),
                sum(&|l| a[l].max(0.0)),
            ];
            for (g, w) in got.iter().zip(want) {
                assert!(
                    (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "{level:?}: {g} vs {w}"
                );
            }
        }
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
    }
}

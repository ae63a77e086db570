//! What the CPU's vector units offer, detected once at run time, and the multiply-add that
//! the kernels build on.

/// The vector instruction set a kernel build targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Level {
    /// 32 registers of 16 f32.
    Avx512,
    /// 16 registers of 8 f32, with FMA.
    Avx2,
    /// Whatever the compilation target guarantees (SSE2 on x86_64).
    Baseline,
}

impl Level {
    /// The level the kernels use: the widest this CPU runs, or a narrower one named by
    /// `DOWNHILL_CPU_BUILD` (`avx512`, `avx2`, `baseline`: to measure each build on a machine;
    /// a level the CPU lacks is never used).
    pub(super) fn detect() -> Level {
        let widest = Level::widest();
        let asked = match std::env::var("DOWNHILL_CPU_BUILD").as_deref() {
            Ok("avx512") => Level::Avx512,
            Ok("avx2") => Level::Avx2,
            Ok("baseline") => Level::Baseline,
            _ => widest,
        };
        if asked.rank() <= widest.rank() {
            asked
        } else {
            widest
        }
    }

    fn rank(self) -> u8 {
        match self {
            Level::Baseline => 0,
            Level::Avx2 => 1,
            Level::Avx512 => 2,
        }
    }

    /// The widest level this CPU runs.
    fn widest() -> Level {
        #[cfg(target_arch = "x86_64")]
        {
            use std::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vl") {
                return Level::Avx512;
            }
            if has!("avx2") && has!("fma") {
                return Level::Avx2;
            }
        }
        Level::Baseline
    }

    /// The level `DOWNHILL_CPU_BUILD` names, if it names one this CPU runs.
    pub(super) fn forced() -> Option<Level> {
        std::env::var("DOWNHILL_CPU_BUILD").ok()?;
        Some(Level::detect())
    }

    /// Every level this CPU runs, narrowest first.
    pub(super) fn available() -> Vec<Level> {
        let mut levels = vec![Level::Baseline];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                levels.push(Level::Avx2);
            }
            if Level::widest() == Level::Avx512 {
                levels.push(Level::Avx512);
            }
        }
        levels
    }
}

/// `a * b + c`, as one fused instruction where the build has FMA (a plain `mul_add` elsewhere
/// would call a slow software routine).
#[inline(always)]
pub(super) fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

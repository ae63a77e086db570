//! The fused kernel for the lesson's family of networks: one hidden layer with an identity
//! output, up to 4 inputs, 4 hidden nodes and 2 outputs (`I-H-O`).
//!
//! The widths are compile-time constants, so the whole forward and backward pass of a group of
//! points (one register's worth: 16 with AVX-512) unrolls into straight-line code on register
//! values (`Isa::F32s`): the weights, the activations and every gradient sum stay in
//! registers, and each point is read once. (Written on arrays of f32 instead, the same loops
//! vectorise but keep the sums in memory, and every group's additions wait on a store: that
//! was 1.5x slower at 10M points and 1.9x at 1M.) Gradients are summed per lane in f32 for
//! [`FLUSH`] groups at a time, then in f64. Each shape is built for every instruction set the
//! CPU runs (through `simd`), and the one measured fastest on this machine is used.

// Index loops mirror the math (`z[j] += w[j][i] * a[i]`) and are the clearest way to write
// it; iterator chains over several arrays at once would obscure it.
#![allow(clippy::needless_range_loop)]

use super::layout::KernelLayout;
use super::simd::{Isa, Level, SimdJob};
use crate::network::Activation;

/// Groups summed in f32 before their sums move to the f64 totals (1,024 points with AVX-512).
const FLUSH: usize = 64;
/// The widest register's lanes: the size of the buffer a short last group is padded in.
const MAX_LANES: usize = 16;

/// The parameters of an `I-H-O` network, each in every lane of a register.
struct Params<S: Isa, const I: usize, const H: usize, const O: usize> {
    w0: [[S::F32s; I]; H],
    b0: [S::F32s; H],
    w1: [[S::F32s; H]; O],
    b1: [S::F32s; O],
}

/// Per-lane f32 sums of the gradient (in the network's own shapes) and the SSE.
struct Sums<S: Isa, const I: usize, const H: usize, const O: usize> {
    w0: [[S::F32s; I]; H],
    b0: [S::F32s; H],
    w1: [[S::F32s; H]; O],
    b1: [S::F32s; O],
    sse: S::F32s,
}

impl<S: Isa, const I: usize, const H: usize, const O: usize> Sums<S, I, H, O> {
    #[inline(always)]
    fn zero(isa: S) -> Self {
        let z = isa.splat(0.0);
        Sums {
            w0: [[z; I]; H],
            b0: [z; H],
            w1: [[z; H]; O],
            b1: [z; O],
            sse: z,
        }
    }
}

/// Forward pass of one group: the hidden activations and the outputs.
#[inline(always)]
fn forward<S: Isa, const I: usize, const H: usize, const O: usize, const RELU: bool>(
    isa: S,
    p: &Params<S, I, H, O>,
    x: &[S::F32s; I],
) -> ([S::F32s; H], [S::F32s; O]) {
    let mut h = p.b0;
    for j in 0..H {
        for i in 0..I {
            h[j] = isa.mul_add(p.w0[j][i], x[i], h[j]);
        }
        if RELU {
            h[j] = isa.keep_where_positive(h[j], h[j]);
        }
    }
    let mut y = p.b1;
    for k in 0..O {
        for j in 0..H {
            y[k] = isa.mul_add(p.w1[k][j], h[j], y[k]);
        }
    }
    (h, y)
}

/// Forward, error and backward pass of one group; `valid` is 1 in the lanes that hold real
/// points and 0 in the padding of a short last group.
#[inline(always)]
fn group<S: Isa, const I: usize, const H: usize, const O: usize, const RELU: bool>(
    isa: S,
    p: &Params<S, I, H, O>,
    x: &[S::F32s; I],
    t: &[S::F32s; O],
    valid: Option<S::F32s>,
    s: &mut Sums<S, I, H, O>,
) {
    let (h, y) = forward::<S, I, H, O, RELU>(isa, p, x);
    let two = isa.splat(2.0);
    let mut d = y;
    for k in 0..O {
        let mut e = isa.sub(y[k], t[k]);
        if let Some(valid) = valid {
            e = isa.mul(e, valid);
        }
        s.sse = isa.mul_add(e, e, s.sse);
        d[k] = isa.mul(two, e);
        s.b1[k] = isa.add(s.b1[k], d[k]);
        for j in 0..H {
            s.w1[k][j] = isa.mul_add(d[k], h[j], s.w1[k][j]);
        }
    }
    for j in 0..H {
        let mut dh = isa.mul(p.w1[0][j], d[0]);
        for k in 1..O {
            dh = isa.mul_add(p.w1[k][j], d[k], dh);
        }
        if RELU {
            dh = isa.keep_where_positive(dh, h[j]);
        }
        s.b0[j] = isa.add(s.b0[j], dh);
        for i in 0..I {
            s.w0[j][i] = isa.mul_add(dh, x[i], s.w0[j][i]);
        }
    }
}

/// Moves the f32 lane sums into the f64 gradient (flat layout) and returns their SSE.
#[inline(always)]
fn flush<S: Isa, const I: usize, const H: usize, const O: usize>(
    isa: S,
    s: &Sums<S, I, H, O>,
    layout: &KernelLayout,
    gradient: &mut [f64],
) -> f64 {
    let [first, second] = &layout.layers[..] else {
        unreachable!("the small kernel is only chosen for two layers")
    };
    for j in 0..H {
        for i in 0..I {
            gradient[first.weights + j * I + i] += f64::from(isa.sum(s.w0[j][i]));
        }
        if let Some(b) = first.bias {
            gradient[b + j] += f64::from(isa.sum(s.b0[j]));
        }
    }
    for k in 0..O {
        for j in 0..H {
            gradient[second.weights + k * H + j] += f64::from(isa.sum(s.w1[k][j]));
        }
        if let Some(b) = second.bias {
            gradient[b + k] += f64::from(isa.sum(s.b1[k]));
        }
    }
    f64::from(isa.sum(s.sse))
}

#[inline(always)]
fn params<S: Isa, const I: usize, const H: usize, const O: usize>(
    isa: S,
    layout: &KernelLayout,
) -> Params<S, I, H, O> {
    let [first, second] = &layout.layers[..] else {
        unreachable!("the small kernel is only chosen for two layers")
    };
    let p = &layout.params;
    let mut params = Params {
        w0: [[isa.splat(0.0); I]; H],
        b0: [isa.splat(0.0); H],
        w1: [[isa.splat(0.0); H]; O],
        b1: [isa.splat(0.0); O],
    };
    for j in 0..H {
        for i in 0..I {
            params.w0[j][i] = isa.splat(p[first.weights + j * I + i]);
        }
        params.b0[j] = isa.splat(first.bias.map_or(0.0, |b| p[b + j]));
    }
    for k in 0..O {
        for j in 0..H {
            params.w1[k][j] = isa.splat(p[second.weights + k * H + j]);
        }
        params.b1[k] = isa.splat(second.bias.map_or(0.0, |b| p[b + k]));
    }
    params
}

/// The SSE of points `start..end` of an `I-H-O` network, adding their gradient to `gradient`.
struct Block<'a, const I: usize, const H: usize, const O: usize, const RELU: bool> {
    layout: &'a KernelLayout,
    columns: &'a [&'a [f32]],
    start: usize,
    end: usize,
    gradient: &'a mut [f64],
}

impl<const I: usize, const H: usize, const O: usize, const RELU: bool> SimdJob
    for Block<'_, I, H, O, RELU>
{
    type Output = f64;

    #[inline(always)]
    fn run<S: Isa>(self, isa: S) -> f64 {
        // The fields as arguments of their own function: LLVM knows that references passed
        // as arguments do not alias (and keeps that when inlining), not those held in a struct.
        block_body::<S, I, H, O, RELU>(
            isa,
            self.layout,
            self.columns,
            self.start,
            self.end,
            self.gradient,
        )
    }
}

/// The body of [`Block`]: full groups of `S::LANES` points, then one short group padded with
/// zeros (and masked out of the error).
#[inline(always)]
fn block_body<S: Isa, const I: usize, const H: usize, const O: usize, const RELU: bool>(
    isa: S,
    layout: &KernelLayout,
    columns: &[&[f32]],
    start: usize,
    end: usize,
    gradient: &mut [f64],
) -> f64 {
    let lanes = S::LANES;
    let p = params::<S, I, H, O>(isa, layout);
    let (inputs, targets) = columns.split_at(I);
    let mut sse = 0.0;
    let full_end = start + (end - start) / lanes * lanes;
    let mut at = start;
    while at < full_end {
        let flush_end = full_end.min(at + FLUSH * lanes);
        let mut sums = Sums::zero(isa);
        while at < flush_end {
            // Plain loops, not `array::from_fn`: its closures are not inlined into code built
            // for a wider instruction set.
            let mut x = [isa.splat(0.0); I];
            for i in 0..I {
                x[i] = isa.load(inputs[i], at);
            }
            let mut t = [isa.splat(0.0); O];
            for k in 0..O {
                t[k] = isa.load(targets[k], at);
            }
            group::<S, I, H, O, RELU>(isa, &p, &x, &t, None, &mut sums);
            at += lanes;
        }
        sse += flush(isa, &sums, layout, gradient);
    }
    if at < end {
        let valid = end - at;
        let padded = |column: &[f32]| {
            let mut buffer = [0.0f32; MAX_LANES];
            buffer[..valid].copy_from_slice(&column[at..end]);
            isa.load(&buffer, 0)
        };
        let mut x = [isa.splat(0.0); I];
        for i in 0..I {
            x[i] = padded(inputs[i]);
        }
        let mut t = [isa.splat(0.0); O];
        for k in 0..O {
            t[k] = padded(targets[k]);
        }
        let mut ones = [0.0f32; MAX_LANES];
        ones[..valid].fill(1.0);
        let mut sums = Sums::zero(isa);
        group::<S, I, H, O, RELU>(isa, &p, &x, &t, Some(isa.load(&ones, 0)), &mut sums);
        sse += flush(isa, &sums, layout, gradient);
    }
    sse
}

/// The small kernel for one shape, built for one instruction set.
#[derive(Clone, Copy, Debug)]
pub struct SmallKernel {
    level: Level,
    block: BlockFn,
}

type BlockFn = fn(Level, &KernelLayout, &[&[f32]], usize, usize, &mut [f64]) -> f64;

impl SmallKernel {
    /// The SSE of points `start..end`, adding their gradient to `gradient`.
    pub fn run(
        self,
        layout: &KernelLayout,
        columns: &[&[f32]],
        start: usize,
        end: usize,
        gradient: &mut [f64],
    ) -> f64 {
        (self.block)(self.level, layout, columns, start, end, gradient)
    }
}

fn block<const I: usize, const H: usize, const O: usize, const RELU: bool>(
    level: Level,
    layout: &KernelLayout,
    columns: &[&[f32]],
    start: usize,
    end: usize,
    gradient: &mut [f64],
) -> f64 {
    level.run(Block::<I, H, O, RELU> {
        layout,
        columns,
        start,
        end,
        gradient,
    })
}

/// The `I-H-O` kernel for `relu`, built for `level`.
fn pick<const I: usize, const H: usize, const O: usize>(relu: bool, level: Level) -> SmallKernel {
    let block = if relu {
        block::<I, H, O, true>
    } else {
        block::<I, H, O, false>
    };
    SmallKernel { level, block }
}

macro_rules! shapes {
    ($widths:expr, $relu:expr, $level:expr; $( ($i:literal, $h:literal, $o:literal) ),* $(,)?) => {
        match $widths {
            $( [$i, $h, $o] => Some(pick::<$i, $h, $o>($relu, $level)), )*
            _ => None,
        }
    };
}

/// The build the small kernels use on this machine: the fastest one, measured once per
/// process (a few milliseconds) on the lesson's 2-2-1 step over 256K points, rather than the
/// widest instruction set: on some CPUs (AMD's double-pumped AVX-512, for one) the widest is
/// not the fastest for this memory-bound loop. `DOWNHILL_CPU_BUILD` overrides the choice.
fn small_level() -> Level {
    static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| Level::forced().unwrap_or_else(fastest_level))
}

fn fastest_level() -> Level {
    const POINTS: usize = 1 << 18;
    let net = crate::network::Network::random(&[2, 2, 1], Activation::Relu, true, 1)
        .expect("2-2-1 is a valid shape");
    let layout = KernelLayout::new(&net);
    let columns: Vec<Vec<f32>> = (0..3)
        .map(|c| {
            (0..POINTS)
                .map(|p| ((p * (c + 3)) % 1000) as f32 / 500.0 - 1.0)
                .collect()
        })
        .collect();
    let columns: Vec<&[f32]> = columns.iter().map(Vec::as_slice).collect();
    let mut gradient = vec![0.0; net.param_count()];
    let levels = Level::available();
    // Rounds that time every build in turn (after a warm-up), each build keeping its best:
    // a moment of noise then slows one sample, not one build.
    let mut best = vec![std::time::Duration::MAX; levels.len()];
    for round in 0..6 {
        for (k, &level) in levels.iter().enumerate() {
            let kernel = pick::<2, 2, 1>(true, level);
            let start = std::time::Instant::now();
            std::hint::black_box(kernel.run(&layout, &columns, 0, POINTS, &mut gradient));
            if round > 0 {
                best[k] = best[k].min(start.elapsed());
            }
        }
    }
    // The widest build unless a narrower one is clearly (10%) faster.
    let widest = levels.len() - 1;
    let mut chosen = widest;
    for k in 0..widest {
        if best[k].as_secs_f64() < 0.9 * best[chosen].as_secs_f64() {
            chosen = k;
        }
    }
    log::info!(
        "small CPU kernels: the {:?} build, measured fastest here ({:?})",
        levels[chosen],
        levels.iter().zip(&best).collect::<Vec<_>>()
    );
    levels[chosen]
}

/// The specialised kernel for a network, when it is `I-H-O` with small widths, an identity
/// output and a relu or identity hidden layer.
pub fn block_for(layout: &KernelLayout) -> Option<SmallKernel> {
    let [hidden, output] = &layout.layers[..] else {
        return None;
    };
    if output.activation != Activation::Identity
        || !matches!(hidden.activation, Activation::Identity | Activation::Relu)
    {
        return None;
    }
    let relu = hidden.activation == Activation::Relu;
    shapes!(&layout.widths[..], relu, small_level();
        (1, 1, 1), (1, 2, 1), (1, 3, 1), (1, 4, 1),
        (2, 1, 1), (2, 2, 1), (2, 3, 1), (2, 4, 1),
        (3, 1, 1), (3, 2, 1), (3, 3, 1), (3, 4, 1),
        (4, 1, 1), (4, 2, 1), (4, 3, 1), (4, 4, 1),
        (1, 1, 2), (1, 2, 2), (1, 3, 2), (1, 4, 2),
        (2, 1, 2), (2, 2, 2), (2, 3, 2), (2, 4, 2),
        (3, 1, 2), (3, 2, 2), (3, 3, 2), (3, 4, 2),
        (4, 1, 2), (4, 2, 2), (4, 3, 2), (4, 4, 2),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{CpuKernel, Reference};
    use crate::{data, Network};

    /// Every build this machine can run (not only the one `small_level` picks) matches the
    /// reference, with and without biases, at sizes that end mid-group and mid-flush.
    #[test]
    fn every_available_build_matches_the_reference() {
        let levels = Level::available();
        for (relu, bias) in [(true, true), (false, true), (true, false)] {
            let hidden = if relu {
                Activation::Relu
            } else {
                Activation::Identity
            };
            let teacher = Network::random(&[3, 4, 2], Activation::Relu, true, 1).unwrap();
            let student = Network::random(&[3, 4, 2], hidden, bias, 2).unwrap();
            // Ends mid-group and mid-flush for 4, 8 and 16 lanes, and right at a flush.
            for points in [
                1,
                3,
                7,
                9,
                15,
                17,
                MAX_LANES * FLUSH,
                MAX_LANES * FLUSH * 2 + 13,
            ] {
                let set = data::generate(&teacher, points, 0.1, 3).unwrap();
                let want = Reference.evaluate(&student, &set);
                let layout = KernelLayout::new(&student);
                let columns = set.column_slices();
                for &level in &levels {
                    let mut gradient = vec![0.0; student.param_count()];
                    let sse = pick::<3, 4, 2>(relu, level).run(
                        &layout,
                        &columns,
                        0,
                        points,
                        &mut gradient,
                    );
                    let scale = want.sse_gradient.iter().map(|g| g * g).sum::<f64>().sqrt();
                    assert!(
                        (sse - want.sse).abs() <= 2e-5 * want.sse,
                        "{level:?} n={points}"
                    );
                    for (g, w) in gradient.iter().zip(&want.sse_gradient) {
                        assert!(
                            (g - w).abs() <= 2e-5 * scale,
                            "{level:?} n={points}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }
}

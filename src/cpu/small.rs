//! The fused kernel for the lesson's family of networks: one hidden layer with an identity
//! output, up to 4 inputs, 4 hidden nodes and 2 outputs (`I-H-O`).
//!
//! The widths are compile-time constants, so the whole forward and backward pass of a group of
//! [`V`] points unrolls into straight-line vector code with every value in registers; the
//! general tile kernel has to go through memory between layers, which costs about three times
//! the instructions on a network this small. Gradients are summed per lane in f32 for
//! [`FLUSH`] groups at a time, then in f64. Each shape is built for every instruction set the
//! CPU runs (through `simd`), and the one measured fastest on this machine is used.

// Index loops mirror the math (`z[j] += w[j][i] * a[i]`) and are the shape the vectoriser
// handles best; iterator chains over several arrays at once would obscure both.
#![allow(clippy::needless_range_loop)]

use super::layout::KernelLayout;
use super::simd::{keep_where_positive, loaded, madd, pairwise_sum, Isa, Level, SimdJob};
use crate::network::Activation;

/// Points per vector group: one AVX-512 register of f32 (two AVX2 ones). With AVX-512's 32
/// registers the gradient sums of a 2-2-1 network never leave registers.
const V: usize = 16;
/// Groups summed in f32 before their sums move to the f64 totals.
const FLUSH: usize = 64;

type Vf = [f32; V];

/// The parameters of an `I-H-O` network in f32.
struct Params<const I: usize, const H: usize, const O: usize> {
    w0: [[f32; I]; H],
    b0: [f32; H],
    w1: [[f32; H]; O],
    b1: [f32; O],
}

/// Per-lane f32 sums of the gradient (in the network's own shapes) and the SSE.
struct Sums<const I: usize, const H: usize, const O: usize> {
    w0: [[Vf; I]; H],
    b0: [Vf; H],
    w1: [[Vf; H]; O],
    b1: [Vf; O],
    sse: Vf,
}

impl<const I: usize, const H: usize, const O: usize> Sums<I, H, O> {
    fn zero() -> Self {
        Sums {
            w0: [[[0.0; V]; I]; H],
            b0: [[0.0; V]; H],
            w1: [[[0.0; V]; H]; O],
            b1: [[0.0; V]; O],
            sse: [0.0; V],
        }
    }
}

/// Forward pass of one group: the hidden activations and the outputs.
#[inline(always)]
fn forward<const I: usize, const H: usize, const O: usize, const RELU: bool, S: Isa>(
    p: &Params<I, H, O>,
    x: &[Vf; I],
) -> ([Vf; H], [Vf; O]) {
    let mut h = [[0.0f32; V]; H];
    for j in 0..H {
        for l in 0..V {
            let mut z = p.b0[j];
            for i in 0..I {
                z = madd::<S>(p.w0[j][i], x[i][l], z);
            }
            h[j][l] = z;
        }
        if RELU {
            let z = h[j];
            keep_where_positive(&mut h[j], &z);
        }
    }
    let mut y = [[0.0f32; V]; O];
    for k in 0..O {
        for l in 0..V {
            let mut z = p.b1[k];
            for j in 0..H {
                z = madd::<S>(p.w1[k][j], h[j][l], z);
            }
            y[k][l] = z;
        }
    }
    (h, y)
}

/// Forward, error and backward pass of one group; `valid` is 1 for lanes that hold real
/// points and 0 for the padding of a short last group.
#[inline(always)]
fn group<const I: usize, const H: usize, const O: usize, const RELU: bool, S: Isa>(
    p: &Params<I, H, O>,
    x: &[Vf; I],
    t: &[Vf; O],
    valid: &Vf,
    s: &mut Sums<I, H, O>,
) {
    let (h, y) = forward::<I, H, O, RELU, S>(p, x);
    let mut d = [[0.0f32; V]; O];
    for k in 0..O {
        for l in 0..V {
            let e = (y[k][l] - t[k][l]) * valid[l];
            s.sse[l] = madd::<S>(e, e, s.sse[l]);
            d[k][l] = 2.0 * e;
        }
        for l in 0..V {
            s.b1[k][l] += d[k][l];
        }
        for j in 0..H {
            for l in 0..V {
                s.w1[k][j][l] = madd::<S>(d[k][l], h[j][l], s.w1[k][j][l]);
            }
        }
    }
    for j in 0..H {
        let mut dh = [0.0f32; V];
        for l in 0..V {
            for k in 0..O {
                dh[l] = madd::<S>(p.w1[k][j], d[k][l], dh[l]);
            }
        }
        if RELU {
            keep_where_positive(&mut dh, &h[j]);
        }
        for l in 0..V {
            s.b0[j][l] += dh[l];
        }
        for i in 0..I {
            for l in 0..V {
                s.w0[j][i][l] = madd::<S>(dh[l], x[i][l], s.w0[j][i][l]);
            }
        }
    }
}

/// Moves the f32 lane sums into the f64 gradient (flat layout) and returns their SSE.
/// Takes the sums by value and is not inlined, so the hot loop never takes their address:
/// a reference into them (indexed by loops the compiler does not unroll in this cold code)
/// would keep every sum in memory, and each group's additions would wait on a store.
#[inline(never)]
fn flush<const I: usize, const H: usize, const O: usize>(
    s: Sums<I, H, O>,
    layout: &KernelLayout,
    gradient: &mut [f64],
) -> f64 {
    let [first, second] = &layout.layers[..] else {
        unreachable!("the small kernel is only chosen for two layers")
    };
    for j in 0..H {
        for i in 0..I {
            gradient[first.weights + j * I + i] += f64::from(pairwise_sum(&s.w0[j][i]));
        }
        if let Some(b) = first.bias {
            gradient[b + j] += f64::from(pairwise_sum(&s.b0[j]));
        }
    }
    for k in 0..O {
        for j in 0..H {
            gradient[second.weights + k * H + j] += f64::from(pairwise_sum(&s.w1[k][j]));
        }
        if let Some(b) = second.bias {
            gradient[b + k] += f64::from(pairwise_sum(&s.b1[k]));
        }
    }
    f64::from(pairwise_sum(&s.sse))
}

fn params<const I: usize, const H: usize, const O: usize>(
    layout: &KernelLayout,
) -> Params<I, H, O> {
    let [first, second] = &layout.layers[..] else {
        unreachable!("the small kernel is only chosen for two layers")
    };
    let p = &layout.params;
    Params {
        w0: std::array::from_fn(|j| std::array::from_fn(|i| p[first.weights + j * I + i])),
        b0: std::array::from_fn(|j| first.bias.map_or(0.0, |b| p[b + j])),
        w1: std::array::from_fn(|k| std::array::from_fn(|j| p[second.weights + k * H + j])),
        b1: std::array::from_fn(|k| second.bias.map_or(0.0, |b| p[b + k])),
    }
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
    fn run<S: Isa>(self, _: S) -> f64 {
        // The fields as arguments of their own function: LLVM knows that references passed
        // as arguments do not alias (and keeps that when inlining), not those held in a struct.
        block_body::<I, H, O, RELU, S>(
            self.layout,
            self.columns,
            self.start,
            self.end,
            self.gradient,
        )
    }
}

/// The body of [`Block`].
#[inline(always)]
fn block_body<const I: usize, const H: usize, const O: usize, const RELU: bool, S: Isa>(
    layout: &KernelLayout,
    columns: &[&[f32]],
    start: usize,
    end: usize,
    gradient: &mut [f64],
) -> f64 {
    let p = params::<I, H, O>(layout);
    let (inputs, targets) = columns.split_at(I);
    let mut sse = 0.0;
    let mut sums = Sums::zero();
    let mut pending = 0;
    const ALL: Vf = [1.0; V];
    for at in (start..end).step_by(V) {
        let valid = V.min(end - at);
        let x: [Vf; I] = loaded(inputs, at, valid);
        let t: [Vf; O] = loaded(targets, at, valid);
        let mask = if valid == V {
            ALL
        } else {
            std::array::from_fn(|l| if l < valid { 1.0 } else { 0.0 })
        };
        group::<I, H, O, RELU, S>(&p, &x, &t, &mask, &mut sums);
        pending += 1;
        if pending == FLUSH {
            sse += flush(sums, layout, gradient);
            sums = Sums::zero();
            pending = 0;
        }
    }
    sse + flush(sums, layout, gradient)
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
    if output.activation != Activation::Identity {
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

    /// Every build this machine can run (not only the one `Level::detect` picks) matches the
    /// reference, at sizes that end mid-group and mid-flush.
    #[test]
    fn every_available_build_matches_the_reference() {
        let levels = Level::available();
        for relu in [true, false] {
            let hidden = if relu {
                Activation::Relu
            } else {
                Activation::Identity
            };
            let teacher = Network::random(&[3, 4, 2], Activation::Relu, true, 1).unwrap();
            let student = Network::random(&[3, 4, 2], hidden, true, 2).unwrap();
            for points in [1, V - 1, V + 1, V * FLUSH + 3] {
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

//! The loss over many values of one weight (the landscape's curve) in one pass over the points.
//!
//! Only the swept weight's node depends on the value: everything before its layer, the other
//! nodes of its layer and, in the layer after, every other node's contribution are computed
//! once per point; each grid value then costs a handful of multiply-adds per point (the
//! node's new pre-activation, its activation, the outputs it feeds, the squared errors). That
//! is the closed form for a weight in the last two layers, which holds every weight of the
//! lesson's networks; a weight deeper in would change every later layer, and is left to the
//! many-networks kernel (`sse_of_many`). Sums are in f64; a loss past single precision's range
//! is reported as infinite, as the f32 kernels would find it.

use rayon::prelude::*;

use crate::data::Points;
use crate::network::{Activation, Network};

/// Points per parallel task.
const TASK: usize = 8192;

/// Where the swept parameter sits: layer `layer`, node `node`, and the input it multiplies
/// (`None` for the bias).
struct Swept {
    layer: usize,
    node: usize,
    input: Option<usize>,
}

fn locate(net: &Network, index: usize) -> Option<Swept> {
    for (layer, (l, (weights, bias))) in net.layers().iter().zip(net.param_offsets()).enumerate() {
        let count = l.nodes() * l.inputs();
        if (weights..weights + count).contains(&index) {
            let k = index - weights;
            return Some(Swept {
                layer,
                node: k / l.inputs(),
                input: Some(k % l.inputs()),
            });
        }
        if let Some(b) = bias.filter(|b| (*b..*b + l.nodes()).contains(&index)) {
            return Some(Swept {
                layer,
                node: index - b,
                input: None,
            });
        }
    }
    None
}

/// `act(z)` in f64, written so that the loop over grid values vectorises.
#[inline(always)]
fn apply(act: Activation, z: f64) -> f64 {
    match act {
        Activation::Identity => z,
        Activation::Relu => {
            if z > 0.0 {
                z
            } else {
                0.0
            }
        }
        other => other.apply(z),
    }
}

/// Grid values computed together: two AVX-512 registers of f64, so that each point's terms,
/// loaded once, serve 16 values.
const LANES: usize = 16;

/// The SSE of `net` over `data` with parameter `index` set to each of `values` (every other
/// weight as it is), or `None` when the parameter is deeper than the last two layers.
pub fn sse_along_one_weight(
    net: &Network,
    data: &Points,
    index: usize,
    values: &[f64],
) -> Option<Vec<f64>> {
    // The closed forms below are the identity's and the ReLU's (pieces of straight lines);
    // other activations take the many-networks kernel.
    let piecewise_linear = |a: Activation| matches!(a, Activation::Identity | Activation::Relu);
    if !net.layers().iter().all(|l| piecewise_linear(l.activation)) {
        return None;
    }
    let swept = locate(net, index)?;
    let layers = net.layers();
    if swept.layer + 2 < layers.len() {
        return None;
    }
    let current = net.params()[index];
    let points = data.len();
    let sums = (0..points.div_ceil(TASK))
        .into_par_iter()
        .map(|task| {
            let range = task * TASK..((task + 1) * TASK).min(points);
            let terms = Terms::of(net, &swept, current, data, range);
            terms.sums(values)
        })
        .reduce(
            || vec![0.0; values.len()],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    // The other kernels compute in f32: a loss (or a weight) past its range is not finite
    // there, and must not be here either, so that every path draws the same landscape.
    let limit = f64::from(f32::MAX);
    Some(
        sums.into_iter()
            .zip(values)
            .map(|(s, v)| {
                if s > limit || v.abs() > limit {
                    f64::INFINITY
                } else {
                    s
                }
            })
            .collect(),
    )
}

/// What each point of a task contributes, as a function of the swept value `v`:
/// `fixed + sum_k (out(rest_k + w_k * node(base + v * scale)) - target_k)^2`, where `node` is
/// the swept node's activation and `out` the last layer's. For a swept output, its one term
/// has `rest = 0`, `w = 1` and an identity `out`.
struct Terms {
    base: Vec<f64>,
    scale: Vec<f64>,
    fixed: Vec<f64>,
    /// Per output term: `rest`, `w` and `target` for every point.
    outputs: Vec<[Vec<f64>; 3]>,
    node: Activation,
    out: Activation,
}

impl Terms {
    fn of(
        net: &Network,
        swept: &Swept,
        current: f64,
        data: &Points,
        range: std::ops::Range<usize>,
    ) -> Terms {
        let layers = net.layers();
        let x = data
            .input_columns()
            .slice(ndarray::s![.., range.clone()])
            .mapv(f64::from);
        let y = data
            .target_columns()
            .slice(ndarray::s![.., range])
            .mapv(f64::from);
        // The swept layer's input, then its pre-activations, once for the whole task.
        let a = layers[..swept.layer]
            .iter()
            .fold(x, |a, layer| layer.forward_columns(a.view()));
        let layer = &layers[swept.layer];
        let mut z = layer.weights.dot(&a);
        if let Some(b) = &layer.bias {
            z += &b.view().insert_axis(ndarray::Axis(1));
        }
        let scale: Vec<f64> = match swept.input {
            Some(i) => a.row(i).to_vec(),
            None => vec![1.0; a.ncols()],
        };
        let base: Vec<f64> = z
            .row(swept.node)
            .iter()
            .zip(&scale)
            .map(|(z, s)| z - current * s)
            .collect();
        let node = layer.activation;
        if swept.layer + 1 == layers.len() {
            // An output: the other outputs' errors are fixed.
            let mut fixed = vec![0.0; base.len()];
            for k in (0..y.nrows()).filter(|&k| k != swept.node) {
                for ((f, z), t) in fixed.iter_mut().zip(z.row(k)).zip(y.row(k)) {
                    let e = apply(node, *z) - t;
                    *f += e * e;
                }
            }
            let n = base.len();
            return Terms {
                base,
                scale,
                fixed,
                outputs: vec![[vec![0.0; n], vec![1.0; n], y.row(swept.node).to_vec()]],
                node,
                out: Activation::Identity,
            };
        }
        // A hidden node: it reaches each output through one weight of the last layer.
        let last = &layers[swept.layer + 1];
        let h = z.mapv(|v| apply(node, v));
        let mut z2 = last.weights.dot(&h);
        if let Some(b) = &last.bias {
            z2 += &b.view().insert_axis(ndarray::Axis(1));
        }
        let outputs = (0..last.nodes())
            .map(|k| {
                let w = last.weights[(k, swept.node)];
                let rest: Vec<f64> = z2
                    .row(k)
                    .iter()
                    .zip(h.row(swept.node))
                    .map(|(z, hj)| z - w * hj)
                    .collect();
                [rest, vec![w; base.len()], y.row(k).to_vec()]
            })
            .collect();
        Terms {
            fixed: vec![0.0; base.len()],
            base,
            scale,
            outputs,
            node,
            out: last.activation,
        }
    }

    /// The task's SSE at every value.
    fn sums(&self, values: &[f64]) -> Vec<f64> {
        if self.out == Activation::Identity && values.windows(2).all(|w| w[0] <= w[1]) {
            return self.sums_piecewise(values);
        }
        let relu = |a: Activation| a == Activation::Relu;
        match (relu(self.node), relu(self.out)) {
            (false, false) => self.sums_with::<false, false>(values),
            (false, true) => self.sums_with::<false, true>(values),
            (true, false) => self.sums_with::<true, false>(values),
            (true, true) => self.sums_with::<true, true>(values),
        }
    }

    /// [`Terms::sums`] with an identity output layer, exactly and without visiting every
    /// (point, value) pair: each point's error terms are `A + B v` where its node is active
    /// and constant where a ReLU node is off, so its contribution is a quadratic in `v` on
    /// each side of one breakpoint. The quadratics' coefficients are added over the range of
    /// grid values where they hold (difference arrays), then summed and evaluated once per
    /// value: O(points x log(values) + values) instead of O(points x values).
    fn sums_piecewise(&self, values: &[f64]) -> Vec<f64> {
        let g = values.len();
        // Coefficients of 1, v and v^2, as differences between consecutive grid values.
        let mut diff = vec![[0.0f64; 3]; g + 1];
        let mut add = |from: usize, to: usize, c: [f64; 3]| {
            if from < to {
                for (d, c) in diff[from].iter_mut().zip(c) {
                    *d += c;
                }
                for (d, c) in diff[to].iter_mut().zip(c) {
                    *d -= c;
                }
            }
        };
        for p in 0..self.base.len() {
            let (base, scale) = (self.base[p], self.scale[p]);
            // Active: e_k = (rest_k + w_k base - t_k) + (w_k scale) v. Off: e_k = rest_k - t_k.
            let mut on = [self.fixed[p], 0.0, 0.0];
            let mut off = [self.fixed[p], 0.0, 0.0];
            for [rest, w, target] in &self.outputs {
                let a = rest[p] + w[p] * base - target[p];
                let b = w[p] * scale;
                on[0] += a * a;
                on[1] += 2.0 * a * b;
                on[2] += b * b;
                let c = rest[p] - target[p];
                off[0] += c * c;
            }
            if self.node == Activation::Identity {
                add(0, g, on);
                continue;
            }
            // Where the ReLU is on, decided exactly as the forward pass decides it.
            let active = |v: f64| base + v * scale > 0.0;
            if scale > 0.0 {
                let first_on = values.partition_point(|&v| !active(v));
                add(0, first_on, off);
                add(first_on, g, on);
            } else if scale < 0.0 {
                let first_off = values.partition_point(|&v| active(v));
                add(0, first_off, on);
                add(first_off, g, off);
            } else if base > 0.0 {
                add(0, g, on);
            } else {
                add(0, g, off);
            }
        }
        let mut running = [0.0f64; 3];
        values
            .iter()
            .zip(&diff)
            .map(|(&v, d)| {
                for (r, d) in running.iter_mut().zip(d) {
                    *r += d;
                }
                running[0] + v * (running[1] + v * running[2])
            })
            .collect()
    }

    /// [`Terms::sums`] for fixed activations: [`LANES`] values at a time, each point's terms
    /// broadcast against them, the sums in registers.
    fn sums_with<const NODE_RELU: bool, const OUT_RELU: bool>(&self, values: &[f64]) -> Vec<f64> {
        #[inline(always)]
        fn act<const RELU: bool>(z: f64) -> f64 {
            if RELU && z <= 0.0 {
                0.0
            } else {
                z
            }
        }
        let mut sums = vec![0.0; values.len()];
        for (block, out) in values.chunks(LANES).zip(sums.chunks_mut(LANES)) {
            let mut v = [0.0f64; LANES];
            v[..block.len()].copy_from_slice(block);
            let mut acc = [0.0f64; LANES];
            let n = self.base.len();
            let (base, scale, fixed) = (&self.base[..n], &self.scale[..n], &self.fixed[..n]);
            if let [[rest, w, target]] = &self.outputs[..] {
                // One output (the lesson's networks): its terms as plain slices.
                let (rest, w, target) = (&rest[..n], &w[..n], &target[..n]);
                for p in 0..n {
                    for l in 0..LANES {
                        let h = act::<NODE_RELU>(base[p] + v[l] * scale[p]);
                        let e = act::<OUT_RELU>(rest[p] + w[p] * h) - target[p];
                        acc[l] += fixed[p] + e * e;
                    }
                }
            } else {
                for p in 0..n {
                    let mut total = [fixed[p]; LANES];
                    let mut h = [0.0f64; LANES];
                    for l in 0..LANES {
                        h[l] = act::<NODE_RELU>(base[p] + v[l] * scale[p]);
                    }
                    for [rest, w, target] in &self.outputs {
                        let (r, w, t) = (rest[p], w[p], target[p]);
                        for l in 0..LANES {
                            let e = act::<OUT_RELU>(r + w * h[l]) - t;
                            total[l] += e * e;
                        }
                    }
                    for l in 0..LANES {
                        acc[l] += total[l];
                    }
                }
            }
            out.copy_from_slice(&acc[..out.len()]);
        }
        sums
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{CpuKernel, Reference};
    use crate::data;

    /// Every parameter of the last two layers, swept over a few values, gives the f64
    /// reference's SSE of the network with that value; deeper parameters are declined.
    #[test]
    fn every_sweepable_weight_matches_the_reference() {
        // Sorted values take the piecewise-quadratic sums; unsorted ones every (point, value).
        for values in [&[-1.5, -0.2, 0.0, 0.7, 2.0][..], &[2.0, -1.5, 0.7]] {
            check_every_weight(values);
        }
    }

    fn check_every_weight(values: &[f64]) {
        for (widths, seed) in [
            (&[2usize, 2, 1][..], 1),
            (&[3, 5, 2], 2),
            (&[2, 4, 3, 1], 3),
            (&[3, 2], 4),
        ] {
            for hidden in [Activation::Relu, Activation::Identity] {
                for bias in [true, false] {
                    let teacher = Network::random(widths, Activation::Relu, true, seed).unwrap();
                    let mut net = Network::random(widths, hidden, bias, seed + 9).unwrap();
                    if !bias && hidden == Activation::Relu {
                        // A ReLU on the output layer too (a model file may have one).
                        let mut layers = net.layers().to_vec();
                        let last = layers.len() - 1;
                        layers[last].activation = Activation::Relu;
                        net = Network::new(layers).unwrap();
                    }
                    let set = data::generate(&teacher, 1000 + TASK + 3, 0.1, seed).unwrap();
                    let deep = widths.len().saturating_sub(3);
                    let first_sweepable: usize =
                        net.layers()[..deep].iter().map(|l| l.param_count()).sum();
                    for index in 0..net.param_count() {
                        let got = sse_along_one_weight(&net, &set, index, values);
                        if index < first_sweepable {
                            assert!(got.is_none());
                            continue;
                        }
                        let got = got.expect("a weight of the last two layers");
                        for (v, g) in values.iter().zip(&got) {
                            let mut moved = net.clone();
                            let mut params = net.params();
                            params[index] = *v;
                            moved.set_params(&params).unwrap();
                            let want = Reference.evaluate(&moved, &set).sse;
                            assert!(
                                (g - want).abs() <= 1e-9 * want.max(1e-12),
                                "{widths:?} {hidden} bias={bias} param {index} = {v}: {g} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}

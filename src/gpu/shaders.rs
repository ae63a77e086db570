//! WGSL sources specialised per network shape: the files in `shaders/` with the shape's
//! constants and loop bodies written into their `{{...}}` markers.

use std::fmt::Write;

use crate::network::{Activation, Network};

/// Threads per workgroup of the per-point kernels (fused and predict).
pub const POINT_WG: u32 = 64;
/// Threads per workgroup of the reduce and update kernels.
pub const REDUCE_WG: u32 = 256;
/// The largest parameter count the fused kernel takes: each thread keeps its own gradient
/// sums in private memory, which is small on every GPU.
pub const MAX_PARAMS: usize = 1024;
/// The largest total node count (inputs included): each thread keeps every activation.
pub const MAX_NODES: usize = 256;

const FUSED: &str = include_str!("../../shaders/fused_step.wgsl");
const REDUCE: &str = include_str!("../../shaders/reduce.wgsl");
const UPDATE: &str = include_str!("../../shaders/update.wgsl");
const PREDICT: &str = include_str!("../../shaders/predict.wgsl");
const TREE_SUM: &str = include_str!("../../shaders/tree_sum.wgsl");
const READ_ONCE: &str = include_str!("../../shaders/read_once.wgsl");

/// Offsets of one layer in the flat parameters and in the per-thread activation array.
struct LayerShape {
    inputs: usize,
    nodes: usize,
    weights: usize,
    bias: Option<usize>,
    relu: bool,
    /// First activation of the layer's inputs.
    input_at: usize,
    /// First activation of the layer's nodes.
    output_at: usize,
}

/// A network's shape as the kernels see it.
pub struct Shape {
    layers: Vec<LayerShape>,
    pub params: usize,
    pub nodes: usize,
    pub inputs: usize,
    pub outputs: usize,
}

impl Shape {
    /// The shape of `net`.
    pub fn of(net: &Network) -> Self {
        let mut at = 0;
        let layers = net
            .layers()
            .iter()
            .zip(net.param_offsets())
            .map(|(l, (weights, bias))| {
                let shape = LayerShape {
                    inputs: l.inputs(),
                    nodes: l.nodes(),
                    weights,
                    bias,
                    relu: l.activation == Activation::Relu,
                    input_at: at,
                    output_at: at + l.inputs(),
                };
                at += l.inputs();
                shape
            })
            .collect();
        Shape {
            layers,
            params: net.param_count(),
            nodes: net.widths().iter().sum(),
            inputs: net.inputs(),
            outputs: net.outputs(),
        }
    }

    /// Whether the kernels can take this shape; the message names the limit when not.
    pub fn check(&self) -> Result<(), String> {
        if self.params > MAX_PARAMS {
            return Err(format!(
                "the network has {} parameters; the GPU kernels take at most {MAX_PARAMS} \
                 (each GPU thread keeps its own gradient sums); use --device cpu",
                self.params
            ));
        }
        if self.nodes > MAX_NODES {
            return Err(format!(
                "the network has {} nodes (inputs included); the GPU kernels take at most \
                 {MAX_NODES}; use --device cpu",
                self.nodes
            ));
        }
        Ok(())
    }

    fn output_at(&self) -> usize {
        self.layers.last().expect("a network has a layer").output_at
    }

    fn fill(&self, template: &str, wg: u32, body: &str) -> String {
        template
            .replace("{{WG}}", &wg.to_string())
            .replace("{{P}}", &self.params.to_string())
            .replace("{{NODES}}", &self.nodes.to_string())
            .replace("{{BODY}}", body)
            .replace("{{TREE_SUM}}", TREE_SUM)
    }

    /// The fused forward/backward kernel.
    pub fn fused_source(&self) -> String {
        let mut body = self.load_and_forward();
        let out = self.output_at();
        let last_relu = self.layers.last().is_some_and(|l| l.relu);
        let _ = writeln!(
            body,
            "        for (var k = 0u; k < {o}u; k++) {{\n\
             \x20           let e = act[{out}u + k] - data[({i}u + k) * chunk.stride + p];\n\
             \x20           g[P] += e * e;\n\
             \x20           delta[{out}u + k] = {d};\n\
             \x20       }}",
            o = self.outputs,
            i = self.inputs,
            d = if last_relu {
                format!("select(0.0, 2.0 * e, act[{out}u + k] > 0.0)")
            } else {
                "2.0 * e".into()
            }
        );
        for (l, layer) in self.layers.iter().enumerate().rev() {
            let bias = layer
                .bias
                .map(|b| format!("\n            g[{b}u + j] += d;"))
                .unwrap_or_default();
            let _ = writeln!(
                body,
                "        for (var j = 0u; j < {n}u; j++) {{\n\
                 \x20           let d = delta[{ao}u + j];\n\
                 \x20           for (var i = 0u; i < {ni}u; i++) {{\n\
                 \x20               g[{w}u + j * {ni}u + i] += d * act[{ai}u + i];\n\
                 \x20           }}{bias}\n\
                 \x20       }}",
                n = layer.nodes,
                ni = layer.inputs,
                ao = layer.output_at,
                ai = layer.input_at,
                w = layer.weights,
            );
            if l > 0 {
                let below_relu = self.layers[l - 1].relu;
                let value = if below_relu {
                    format!("select(0.0, s, act[{}u + i] > 0.0)", layer.input_at)
                } else {
                    "s".into()
                };
                let _ = writeln!(
                    body,
                    "        for (var i = 0u; i < {ni}u; i++) {{\n\
                     \x20           var s = 0.0;\n\
                     \x20           for (var j = 0u; j < {n}u; j++) {{\n\
                     \x20               s += w[{w}u + j * {ni}u + i] * delta[{ao}u + j];\n\
                     \x20           }}\n\
                     \x20           delta[{ai}u + i] = {value};\n\
                     \x20       }}",
                    n = layer.nodes,
                    ni = layer.inputs,
                    ao = layer.output_at,
                    ai = layer.input_at,
                    w = layer.weights,
                );
            }
        }
        self.fill(FUSED, POINT_WG, &body)
    }

    /// The forward-only kernel.
    pub fn predict_source(&self) -> String {
        let mut body = self.load_and_forward();
        let _ = writeln!(
            body,
            "        for (var k = 0u; k < {o}u; k++) {{\n\
             \x20           out[k * chunk.stride + p] = act[{out}u + k];\n\
             \x20       }}",
            o = self.outputs,
            out = self.output_at()
        );
        self.fill(PREDICT, POINT_WG, &body)
    }

    /// The reduce kernel.
    pub fn reduce_source(&self) -> String {
        self.fill(REDUCE, REDUCE_WG, "")
    }

    /// The update kernel.
    pub fn update_source(&self) -> String {
        self.fill(UPDATE, REDUCE_WG, "")
    }

    /// The read-only yardstick kernel (it does not depend on the shape).
    pub fn read_once_source() -> String {
        READ_ONCE
            .replace("{{WG}}", &POINT_WG.to_string())
            .replace("{{TREE_SUM}}", TREE_SUM)
    }

    fn load_and_forward(&self) -> String {
        let mut body = String::new();
        let _ = writeln!(
            body,
            "        for (var i = 0u; i < {}u; i++) {{\n\
             \x20           act[i] = data[i * chunk.stride + p];\n\
             \x20       }}",
            self.inputs
        );
        for layer in &self.layers {
            let start = layer
                .bias
                .map_or("0.0".to_string(), |b| format!("w[{b}u + j]"));
            let value = if layer.relu { "max(z, 0.0)" } else { "z" };
            let _ = writeln!(
                body,
                "        for (var j = 0u; j < {n}u; j++) {{\n\
                 \x20           var z = {start};\n\
                 \x20           for (var i = 0u; i < {ni}u; i++) {{\n\
                 \x20               z += w[{w}u + j * {ni}u + i] * act[{ai}u + i];\n\
                 \x20           }}\n\
                 \x20           act[{ao}u + j] = {value};\n\
                 \x20       }}",
                n = layer.nodes,
                ni = layer.inputs,
                w = layer.weights,
                ai = layer.input_at,
                ao = layer.output_at,
            );
        }
        body
    }
}

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
/// Up to this many parameters the per-point kernels keep the weights in registers on every
/// adapter (see [`WeightReads`]).
pub const REGISTER_WEIGHTS: usize = 64;
/// Updates the update kernel records per submission (each run's history holds this many).
pub const STEPS_PER_SUBMIT: usize = 64;
/// The most runs of a sweep the fused kernel steps from one read of each point (its slots).
pub const MAX_SLOTS: usize = 8;
/// Weights and gradient sums the slots of one thread may hold together: a thread keeps
/// `2 * params + 1` values per slot, and more than about 160 would spill out of registers on
/// hardware GPUs (255 per thread on NVIDIA's, with the activations and indices besides).
const SLOT_VALUES: usize = 160;

/// Where the per-point kernels read a weight at every point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightReads {
    /// From workgroup memory, where the workgroup put them once.
    Shared,
    /// From registers: each thread reads every weight from workgroup memory once.
    Registers,
}

impl WeightReads {
    /// Registers on a software adapter, at every shape the per-point kernels take: lavapipe
    /// runs each read of workgroup memory as a loop over its SIMD lanes, and registers made
    /// the training step 1.8-2.6x faster at every shape measured (2-2-1 to 8-24-24-1,
    /// BENCHMARKS.md). On a hardware GPU, registers only for networks of up to
    /// [`REGISTER_WEIGHTS`] parameters: hundreds more live values per thread would spill, and
    /// workgroup memory is what those kernels were designed around (not measured there yet).
    pub fn choose(software: bool, params: usize) -> Self {
        if software || params <= REGISTER_WEIGHTS {
            WeightReads::Registers
        } else {
            WeightReads::Shared
        }
    }
}

const FUSED: &str = include_str!("../../shaders/fused_step.wgsl");
const REDUCE: &str = include_str!("../../shaders/reduce.wgsl");
const UPDATE: &str = include_str!("../../shaders/update.wgsl");
const PREDICT: &str = include_str!("../../shaders/predict.wgsl");
const SUM_WORKGROUP: &str = include_str!("../../shaders/sum_workgroup.wgsl");
const SUM_SUBGROUPS: &str = include_str!("../../shaders/sum_subgroups.wgsl");
const READ_ONCE: &str = include_str!("../../shaders/read_once.wgsl");
const LANDSCAPE: &str = include_str!("../../shaders/landscape.wgsl");
const LAYERED: &str = include_str!("../../shaders/layered.wgsl");
const FMA_PEAK: &str = include_str!("../../shaders/fma_peak.wgsl");
const GATHER: &str = include_str!("../../shaders/gather.wgsl");

/// Rounds of the arithmetic yardstick's chains per thread.
pub const FMA_ROUNDS: u32 = 1024;
/// Multiply-add chains of 4 lanes per thread in the yardstick: 2 flops each per round.
pub const FMA_CHAINS: u32 = 8;

/// How a workgroup adds up its threads' values, in every kernel that sums (the fused pass's
/// partial sums, their reduction, the update's gradient norm, the landscape, the yardstick,
/// the layered kernels' SSE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// A tree of halvings in workgroup memory: every adapter.
    Workgroup,
    /// `subgroupAdd` within each subgroup, then the subgroups' sums: adapters with wgpu's
    /// `SUBGROUP` feature.
    Subgroups,
}

impl Reduction {
    /// `source` with its `workgroup_sum` written in: the function (`{{WORKGROUP_SUM}}`), the
    /// entry point inputs it needs (`{{SUBGROUP_INPUTS}}`) and what the kernel passes it
    /// (`{{SUBGROUP_IDS}}`).
    fn fill(self, source: &str) -> String {
        match self {
            Reduction::Workgroup => source
                .replace("{{WORKGROUP_SUM}}", SUM_WORKGROUP)
                .replace("{{SUBGROUP_INPUTS}}", "")
                .replace("{{SUBGROUP_IDS}}", "vec2<u32>()"),
            // naga takes subgroup operations without WGSL's `enable subgroups;` (it rejects
            // the directive); the device's SUBGROUP feature is what allows them.
            Reduction::Subgroups => source
                .replace("{{WORKGROUP_SUM}}", SUM_SUBGROUPS)
                .replace(
                    "{{SUBGROUP_INPUTS}}",
                    "@builtin(subgroup_id) subgroup_id: u32,\n    \
                     @builtin(num_subgroups) subgroup_count: u32,",
                )
                .replace("{{SUBGROUP_IDS}}", "vec2<u32>(subgroup_id, subgroup_count)"),
        }
    }
}

/// The layered kernels' code for an activation (`activate` in layered.wgsl).
fn activation_code(act: Activation) -> u32 {
    match act {
        Activation::Identity => 0,
        Activation::Relu => 1,
        Activation::Tanh => 2,
        Activation::Sigmoid => 3,
    }
}

/// WGSL for `act` of the pre-activation `z` (tanh's argument clamped where f32's tanh is
/// already +-1: some drivers compute it from exponentials that overflow).
fn activate(act: Activation, z: &str) -> String {
    match act {
        Activation::Identity => z.to_string(),
        Activation::Relu => format!("max({z}, 0.0)"),
        Activation::Tanh => format!("tanh(clamp({z}, -15.0, 15.0))"),
        Activation::Sigmoid => format!("1.0 / (1.0 + exp(-({z})))"),
    }
}

/// WGSL for `value` times the slope of `act` where its output is `a`.
fn times_slope(act: Activation, value: &str, a: &str) -> String {
    match act {
        Activation::Identity => value.to_string(),
        Activation::Relu => format!("select(0.0, {value}, {a} > 0.0)"),
        Activation::Tanh => format!("({value}) * (1.0 - {a} * {a})"),
        Activation::Sigmoid => format!("({value}) * {a} * (1.0 - {a})"),
    }
}

/// Weight `k` of slot `slot` (a run of a sweep; 0 for one run) as the per-point kernels'
/// bodies read it, the slots' weights one after another in `w`.
fn weight(reads: WeightReads, slot: usize, params: usize, k: usize) -> String {
    match reads {
        WeightReads::Registers => format!("w_{slot}_{k}"),
        WeightReads::Shared => format!("w[{}u]", slot * params + k),
    }
}

/// Offsets of one layer in the flat parameters and in the per-thread activation array.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LayerShape {
    inputs: usize,
    nodes: usize,
    weights: usize,
    bias: Option<usize>,
    activation: Activation,
    /// First activation of the layer's inputs.
    input_at: usize,
    /// First activation of the layer's nodes.
    output_at: usize,
}

/// A network's shape as the kernels see it.
#[derive(Clone, Debug, PartialEq, Eq)]
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
                    activation: l.activation,
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

    /// The widths, inputs first: `8-64-64-1`.
    pub fn describe_widths(&self) -> String {
        let mut widths = vec![self.inputs.to_string()];
        widths.extend(self.layers.iter().map(|l| l.nodes.to_string()));
        widths.join("-")
    }

    /// The network's layers.
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// Layer `l`'s inputs and nodes, and whether it has biases.
    pub fn layer_size(&self, l: usize) -> (usize, usize, bool) {
        let layer = &self.layers[l];
        (layer.inputs, layer.nodes, layer.bias.is_some())
    }

    /// The layered kernels (shaders/layered.wgsl) with layer `l`'s constants, for batches of
    /// `batch` points. The kernels that belong to no layer read only the shape's constants.
    pub fn layered_source(&self, l: usize, batch: u32, reduction: Reduction) -> String {
        let layer = &self.layers[l];
        let last = self.layers.last().expect("a network has a layer");
        let below = if l > 0 {
            self.layers[l - 1].activation
        } else {
            Activation::Identity
        };
        let source = LAYERED
            .replace("{{B}}", &batch.to_string())
            .replace("{{P}}", &self.params.to_string())
            .replace("{{NODES}}", &self.nodes.to_string())
            .replace("{{INPUTS}}", &self.inputs.to_string())
            .replace("{{OUTPUTS}}", &self.outputs.to_string())
            .replace(
                "{{OUTPUT_ACT}}",
                &activation_code(last.activation).to_string(),
            )
            .replace("{{OUTPUT_AT}}", &last.output_at.to_string())
            .replace("{{I}}", &layer.inputs.to_string())
            .replace("{{J}}", &layer.nodes.to_string())
            .replace("{{W}}", &layer.weights.to_string())
            .replace("{{HAS_BIAS}}", &layer.bias.is_some().to_string())
            .replace("{{BIAS}}", &layer.bias.unwrap_or(0).to_string())
            .replace("{{ACT}}", &activation_code(layer.activation).to_string())
            .replace("{{IN_AT}}", &layer.input_at.to_string())
            .replace("{{OUT_AT}}", &layer.output_at.to_string())
            .replace("{{INPUT_ACT}}", &activation_code(below).to_string());
        reduction.fill(&source)
    }

    /// Whether the per-point kernels (training, prediction, the landscape) can take this
    /// shape; the message names the limit when not. Training takes every shape: the layered
    /// kernels take the ones the per-point kernels cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.params > MAX_PARAMS {
            return Err(format!(
                "the network has {} parameters; the GPU's landscape kernel takes at most \
                 {MAX_PARAMS} (each GPU thread keeps its own activations); use --device cpu",
                self.params
            ));
        }
        if self.nodes > MAX_NODES {
            return Err(format!(
                "the network has {} nodes (inputs included); the GPU's landscape kernel takes \
                 at most {MAX_NODES}; use --device cpu",
                self.nodes
            ));
        }
        Ok(())
    }

    /// The first row of the outputs among all nodes (inputs first).
    pub fn output_row(&self) -> usize {
        self.output_at()
    }

    fn output_at(&self) -> usize {
        self.layers.last().expect("a network has a layer").output_at
    }

    /// The statements that read every weight of `slots` slots into a register (`w_i_k`),
    /// for `reads`.
    fn register_weights(&self, reads: WeightReads, slots: usize) -> String {
        match reads {
            WeightReads::Shared => String::new(),
            WeightReads::Registers => (0..slots * self.params)
                .map(|k| {
                    let (slot, at) = (k / self.params, k % self.params);
                    format!("    let w_{slot}_{at} = w[{k}u];\n")
                })
                .collect(),
        }
    }

    /// How many runs of a sweep the fused kernel steps from one read of each point for this
    /// shape: as many as fit [`SLOT_VALUES`], 1 to [`MAX_SLOTS`].
    pub fn max_slots(&self) -> usize {
        (SLOT_VALUES / (2 * self.params + 1)).clamp(1, MAX_SLOTS)
    }

    fn fill(
        &self,
        template: &str,
        wg: u32,
        body: &str,
        reduction: Reduction,
        reads: WeightReads,
        slots: usize,
    ) -> String {
        let source = template
            .replace("{{WEIGHTS}}", &self.register_weights(reads, slots))
            .replace("{{RB}}", &slots.to_string())
            .replace("{{RB_P}}", &(slots * self.params).to_string())
            .replace("{{RB_PP}}", &(slots * (self.params + 1)).to_string())
            .replace("{{STEPS}}", &STEPS_PER_SUBMIT.to_string())
            .replace("{{WG}}", &wg.to_string())
            .replace("{{P}}", &self.params.to_string())
            .replace("{{NODES}}", &self.nodes.to_string())
            .replace("{{BODY}}", body);
        reduction.fill(&source)
    }

    /// The fused forward/backward kernel, stepping `slots` runs from each read of a point.
    ///
    /// The body is written out in full, one statement per weight, with constant indices:
    /// shader compilers then keep the per-thread arrays in registers. With loops over the
    /// arrays, software adapters (lavapipe) keep them in memory and run several times slower.
    pub fn fused_source(&self, reduction: Reduction, reads: WeightReads, slots: usize) -> String {
        let mut body = self.load_inputs();
        for k in 0..self.outputs {
            let _ = writeln!(
                body,
                "        let t_{k} = data[{t}u * chunk.stride + p];",
                t = self.inputs + k
            );
        }
        for slot in 0..slots {
            body += &self.forward(reads, slot);
            body += &self.backward(reads, slot);
        }
        let pp = self.params + 1;
        let sums: String = (0..slots * pp)
            .map(|v| {
                format!(
                    "    write_sum(workgroup_sum(g[{v}u], lid.x, {{{{SUBGROUP_IDS}}}}), {i}u, {k}u, \
                     lid.x, wid.x);\n",
                    i = v / pp,
                    k = v % pp
                )
            })
            .collect();
        let source = FUSED.replace("{{SUMS}}", &sums);
        self.fill(&source, POINT_WG, &body, reduction, reads, slots)
    }

    /// The squared errors of slot `slot`'s forward pass and its backward pass, adding into the
    /// slot's gradient sums (`g[slot * PP..]`).
    fn backward(&self, reads: WeightReads, slot: usize) -> String {
        let mut body = String::new();
        let at = slot * (self.params + 1);
        let out = self.output_at();
        let last = self
            .layers
            .last()
            .expect("a network has a layer")
            .activation;
        for k in 0..self.outputs {
            let d = times_slope(last, "2.0 * e", &format!("act[{}u]", out + k));
            let _ = writeln!(
                body,
                "        {{\n\
                 \x20           let e = act[{a}u] - t_{k};\n\
                 \x20           g[{sse}u] += e * e;\n\
                 \x20           delta[{a}u] = {d};\n\
                 \x20       }}",
                a = out + k,
                sse = at + self.params,
            );
        }
        for (l, layer) in self.layers.iter().enumerate().rev() {
            for j in 0..layer.nodes {
                let d = format!("delta[{}u]", layer.output_at + j);
                for i in 0..layer.inputs {
                    let _ = writeln!(
                        body,
                        "        g[{g}u] += {d} * act[{a}u];",
                        g = at + layer.weights + j * layer.inputs + i,
                        a = layer.input_at + i,
                    );
                }
                if let Some(b) = layer.bias {
                    let _ = writeln!(body, "        g[{}u] += {d};", at + b + j);
                }
            }
            if l > 0 {
                let below = self.layers[l - 1].activation;
                for i in 0..layer.inputs {
                    let terms: Vec<String> = (0..layer.nodes)
                        .map(|j| {
                            format!(
                                "{} * delta[{}u]",
                                weight(
                                    reads,
                                    slot,
                                    self.params,
                                    layer.weights + j * layer.inputs + i
                                ),
                                layer.output_at + j
                            )
                        })
                        .collect();
                    let sum = terms.join(" + ");
                    let a = layer.input_at + i;
                    let value = times_slope(below, &sum, &format!("act[{a}u]"));
                    let _ = writeln!(body, "        delta[{a}u] = {value};");
                }
            }
        }
        body
    }

    /// The forward-only kernel.
    pub fn predict_source(&self, reads: WeightReads) -> String {
        let mut body = self.load_inputs() + &self.forward(reads, 0);
        // Constant indices (see `fused_source`).
        for k in 0..self.outputs {
            let _ = writeln!(
                body,
                "        out[{k}u * chunk.stride + p] = act[{a}u];",
                a = self.output_at() + k
            );
        }
        // Nothing to sum: either way gives the same text.
        self.fill(PREDICT, POINT_WG, &body, Reduction::Workgroup, reads, 1)
    }

    /// The reduce kernel.
    pub fn reduce_source(&self, reduction: Reduction) -> String {
        self.fill(REDUCE, REDUCE_WG, "", reduction, WeightReads::Shared, 1)
    }

    /// The update kernel.
    pub fn update_source(&self, reduction: Reduction) -> String {
        self.fill(UPDATE, REDUCE_WG, "", reduction, WeightReads::Shared, 1)
    }

    /// The many-vectors SSE kernel of the loss landscape.
    pub fn landscape_source(&self, reduction: Reduction, reads: WeightReads) -> String {
        let mut body = self.load_inputs() + &self.forward(reads, 0);
        let out = self.output_at();
        for k in 0..self.outputs {
            let _ = writeln!(
                body,
                "        {{\n\
                 \x20           let e = act[{a}u] - data[{t}u * chunk.stride + p];\n\
                 \x20           sse += e * e;\n\
                 \x20       }}",
                a = out + k,
                t = self.inputs + k,
            );
        }
        self.fill(LANDSCAPE, POINT_WG, &body, reduction, reads, 1)
    }

    /// The arithmetic yardstick kernel (it does not depend on the shape).
    pub fn fma_peak_source() -> String {
        FMA_PEAK
            .replace("{{WG}}", &POINT_WG.to_string())
            .replace("{{ROUNDS}}", &FMA_ROUNDS.to_string())
    }

    /// The mini-batch gather (it does not depend on the shape).
    pub fn gather_source() -> String {
        GATHER.replace("{{WG}}", &POINT_WG.to_string())
    }

    /// The read-only yardstick kernel (it does not depend on the shape).
    pub fn read_once_source(reduction: Reduction) -> String {
        reduction.fill(&READ_ONCE.replace("{{WG}}", &POINT_WG.to_string()))
    }

    /// Loads the point's inputs.
    fn load_inputs(&self) -> String {
        let mut body = String::new();
        for i in 0..self.inputs {
            let _ = writeln!(body, "        act[{i}u] = data[{i}u * chunk.stride + p];");
        }
        body
    }

    /// The forward pass with slot `slot`'s weights, written out in full (see
    /// [`Shape::fused_source`]).
    fn forward(&self, reads: WeightReads, slot: usize) -> String {
        let mut body = String::new();
        for layer in &self.layers {
            for j in 0..layer.nodes {
                let mut terms: Vec<String> = layer
                    .bias
                    .map(|b| weight(reads, slot, self.params, b + j))
                    .into_iter()
                    .collect();
                terms.extend((0..layer.inputs).map(|i| {
                    format!(
                        "{} * act[{}u]",
                        weight(
                            reads,
                            slot,
                            self.params,
                            layer.weights + j * layer.inputs + i
                        ),
                        layer.input_at + i
                    )
                }));
                let z = terms.join(" + ");
                let value = activate(layer.activation, &z);
                let _ = writeln!(body, "        act[{}u] = {value};", layer.output_at + j);
            }
        }
        body
    }
}

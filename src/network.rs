//! Dense networks: layers, activations, the flat parameter layout and the weight names.
//!
//! Layer `l` computes `z = W a + b`, `a' = act(z)` with `W[node][input]`. Parameters are laid
//! out flat, layer by layer: the weights row-major by node, then the bias (if any). The same
//! layout is used by the CPU paths, the GPU kernels and the gradient vectors, and each position
//! has a human name: `l{layer}.n{node}.w{input}` or `l{layer}.n{node}.b`.

use std::fmt;
use std::str::FromStr;

use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A node's activation function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `a = z`: the lesson's baseline network uses no activation.
    Identity,
    /// `a = max(z, 0)`.
    Relu,
    /// `a = tanh(z)`.
    Tanh,
    /// `a = 1 / (1 + exp(-z))`, the logistic function.
    Sigmoid,
}

impl Activation {
    /// Applies the activation to a pre-activation value.
    #[inline]
    pub fn apply(self, z: f64) -> f64 {
        match self {
            Activation::Identity => z,
            Activation::Relu => z.max(0.0),
            Activation::Tanh => z.tanh(),
            Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        }
    }

    /// The activation's slope, written in terms of its output `a` (1 or 0 for a ReLU, as the
    /// lesson says; at `z = 0` the ReLU's slope is taken as 0; `1 - a^2` for tanh, `a (1 - a)`
    /// for the sigmoid).
    #[inline]
    pub fn slope_from_output(self, a: f64) -> f64 {
        match self {
            Activation::Identity => 1.0,
            Activation::Relu => {
                if a > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Tanh => 1.0 - a * a,
            Activation::Sigmoid => a * (1.0 - a),
        }
    }

    /// The name used in model files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "identity" | "linear" => Ok(Activation::Identity),
            "relu" => Ok(Activation::Relu),
            "tanh" => Ok(Activation::Tanh),
            "sigmoid" | "logistic" => Ok(Activation::Sigmoid),
            other => Err(Error::InvalidArgument(format!(
                "unknown activation '{other}' (expected identity, relu, tanh or sigmoid)"
            ))),
        }
    }
}

/// One dense layer: `weights[node][input]`, an optional `bias[node]` and an activation.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub weights: Array2<f64>,
    pub bias: Option<Array1<f64>>,
    pub activation: Activation,
}

impl Layer {
    /// Builds a layer, checking that the bias (if any) has one entry per node.
    pub fn new(
        weights: Array2<f64>,
        bias: Option<Array1<f64>>,
        activation: Activation,
    ) -> Result<Self> {
        let (nodes, inputs) = weights.dim();
        if nodes == 0 || inputs == 0 {
            return Err(Error::InvalidNetwork(format!(
                "a layer needs at least one node and one input (got {nodes} nodes, {inputs} inputs)"
            )));
        }
        if let Some(b) = &bias {
            if b.len() != nodes {
                return Err(Error::InvalidNetwork(format!(
                    "bias has {} entries for {nodes} nodes",
                    b.len()
                )));
            }
        }
        Ok(Layer {
            weights,
            bias,
            activation,
        })
    }

    /// Number of inputs feeding the layer.
    pub fn inputs(&self) -> usize {
        self.weights.ncols()
    }

    /// Number of nodes in the layer.
    pub fn nodes(&self) -> usize {
        self.weights.nrows()
    }

    /// This layer's output for inputs given column by column, shape `(inputs, points)`.
    pub fn forward_columns(&self, a: ndarray::ArrayView2<f64>) -> Array2<f64> {
        let mut z = self.weights.dot(&a);
        if let Some(b) = &self.bias {
            z += &b.view().insert_axis(ndarray::Axis(1));
        }
        let act = self.activation;
        z.mapv_inplace(|v| act.apply(v));
        z
    }

    /// Number of parameters (weights plus biases).
    pub fn param_count(&self) -> usize {
        self.weights.len() + self.bias.as_ref().map_or(0, |b| b.len())
    }
}

/// A dense feed-forward network.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    layers: Vec<Layer>,
}

impl Network {
    /// Builds a network from layers whose shapes chain (each layer's inputs equal the previous
    /// layer's nodes).
    pub fn new(layers: Vec<Layer>) -> Result<Self> {
        if layers.is_empty() {
            return Err(Error::InvalidNetwork(
                "a network needs at least one layer".into(),
            ));
        }
        for (l, pair) in layers.windows(2).enumerate() {
            if pair[1].inputs() != pair[0].nodes() {
                return Err(Error::InvalidNetwork(format!(
                    "layer {} has {} inputs but layer {l} has {} nodes",
                    l + 1,
                    pair[1].inputs(),
                    pair[0].nodes()
                )));
            }
        }
        for (l, layer) in layers.iter().enumerate() {
            let finite = layer.weights.iter().all(|w| w.is_finite())
                && layer.bias.iter().flatten().all(|b| b.is_finite());
            if !finite {
                return Err(Error::InvalidNetwork(format!(
                    "layer {l} has a non-finite weight or bias"
                )));
            }
        }
        Ok(Network { layers })
    }

    /// A network of the given widths (`[inputs, hidden..., outputs]`) with seeded random
    /// weights (uniform, scaled by `sqrt(6 / fan_in)` so that ReLU layers start in a useful
    /// range) and zero biases.
    pub fn random(widths: &[usize], hidden: Activation, bias: bool, seed: u64) -> Result<Self> {
        check_widths(widths)?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let last = widths.len() - 2;
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(l, w)| {
                let (inputs, nodes) = (w[0], w[1]);
                let scale = (6.0 / inputs as f64).sqrt();
                let weights =
                    Array2::from_shape_fn((nodes, inputs), |_| rng.random_range(-scale..scale));
                let activation = if l == last {
                    Activation::Identity
                } else {
                    hidden
                };
                Layer::new(weights, bias.then(|| Array1::zeros(nodes)), activation)
            })
            .collect::<Result<Vec<_>>>()?;
        Network::new(layers)
    }

    /// The lesson's baseline 2-2-1 network (docs/LESSON.md example A): hidden weights
    /// `node_0: [1, 1]`, `node_1: [-1, 1]`, output weights `[2, -1]`, no bias, with the given
    /// hidden activation (the baseline itself uses `identity`).
    pub fn lesson_baseline(hidden: Activation) -> Self {
        let hidden_layer = Layer {
            weights: ndarray::arr2(&[[1.0, 1.0], [-1.0, 1.0]]),
            bias: None,
            activation: hidden,
        };
        let output_layer = Layer {
            weights: ndarray::arr2(&[[2.0, -1.0]]),
            bias: None,
            activation: Activation::Identity,
        };
        Network {
            layers: vec![hidden_layer, output_layer],
        }
    }

    /// The layers, input side first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Number of inputs of the first layer.
    pub fn inputs(&self) -> usize {
        self.layers[0].inputs()
    }

    /// Number of outputs of the last layer.
    pub fn outputs(&self) -> usize {
        self.layers[self.layers.len() - 1].nodes()
    }

    /// `[inputs, nodes of each layer...]`.
    pub fn widths(&self) -> Vec<usize> {
        std::iter::once(self.inputs())
            .chain(self.layers.iter().map(Layer::nodes))
            .collect()
    }

    /// Total number of parameters.
    pub fn param_count(&self) -> usize {
        self.layers.iter().map(Layer::param_count).sum()
    }

    /// Floating-point operations one training step spends per point, counting a multiply-add
    /// as two: the forward pass (`2 * inputs * nodes` per layer), the weights' gradient (the
    /// same again) and the error passed back to every layer but the first (the same again).
    /// Biases, activations and the error itself are a few operations per node and left out.
    pub fn step_flops_per_point(&self) -> usize {
        self.layers
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                let products = 2 * layer.inputs() * layer.nodes();
                if l == 0 {
                    2 * products
                } else {
                    3 * products
                }
            })
            .sum()
    }

    /// Where each layer's parameters start in the flat layout: `(weights, bias)`, with no
    /// bias offset for a layer without a bias.
    pub fn param_offsets(&self) -> Vec<(usize, Option<usize>)> {
        let mut offset = 0;
        self.layers
            .iter()
            .map(|l| {
                let weights = offset;
                offset += l.weights.len();
                let bias = l.bias.as_ref().map(|b| {
                    offset += b.len();
                    weights + l.weights.len()
                });
                (weights, bias)
            })
            .collect()
    }

    /// The parameters in the flat layout.
    pub fn params(&self) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.param_count());
        for layer in &self.layers {
            out.extend(layer.weights.iter());
            if let Some(b) = &layer.bias {
                out.extend(b.iter());
            }
        }
        out
    }

    /// Replaces the parameters from a flat slice in the layout of [`Network::params`].
    pub fn set_params(&mut self, flat: &[f64]) -> Result<()> {
        if flat.len() != self.param_count() {
            return Err(Error::ShapeMismatch {
                context: "parameter vector".into(),
                expected: format!("{} values", self.param_count()),
                got: format!("{} values", flat.len()),
            });
        }
        let mut rest = flat;
        for layer in &mut self.layers {
            for w in layer.weights.iter_mut() {
                *w = rest[0];
                rest = &rest[1..];
            }
            if let Some(b) = &mut layer.bias {
                for v in b.iter_mut() {
                    *v = rest[0];
                    rest = &rest[1..];
                }
            }
        }
        Ok(())
    }

    /// The name of every parameter, in the flat layout.
    pub fn param_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.param_count());
        for (l, layer) in self.layers.iter().enumerate() {
            for n in 0..layer.nodes() {
                for i in 0..layer.inputs() {
                    names.push(format!("l{l}.n{n}.w{i}"));
                }
            }
            if layer.bias.is_some() {
                for n in 0..layer.nodes() {
                    names.push(format!("l{l}.n{n}.b"));
                }
            }
        }
        names
    }

    /// Position of a named parameter in the flat layout.
    pub fn param_index(&self, name: &str) -> Result<usize> {
        let names = self.param_names();
        names.iter().position(|n| n == name).ok_or_else(|| {
            let shown: Vec<&str> = names.iter().take(12).map(String::as_str).collect();
            Error::InvalidArgument(format!(
                "no weight named '{name}' in this network (its weights: {}{})",
                shown.join(", "),
                if names.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            ))
        })
    }

    /// The outputs for inputs given column by column, in f64: `(inputs, points)` in,
    /// `(outputs, points)` out.
    pub fn forward_columns(&self, x: ndarray::ArrayView2<f64>) -> Array2<f64> {
        self.layers
            .iter()
            .fold(x.to_owned(), |a, layer| layer.forward_columns(a.view()))
    }

    /// Forward pass for one point, in f64: the values of the output nodes.
    pub fn predict_one(&self, inputs: &[f64]) -> Vec<f64> {
        let mut a = inputs.to_vec();
        for layer in &self.layers {
            a = layer
                .weights
                .outer_iter()
                .enumerate()
                .map(|(n, row)| {
                    let z: f64 = row.iter().zip(&a).map(|(w, x)| w * x).sum::<f64>()
                        + layer.bias.as_ref().map_or(0.0, |b| b[n]);
                    layer.activation.apply(z)
                })
                .collect();
        }
        a
    }

    /// A short description such as `2-2-1 (relu hidden, bias)`.
    pub fn describe(&self) -> String {
        let shape = self
            .widths()
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("-");
        let hidden: Vec<&str> = self.layers[..self.layers.len() - 1]
            .iter()
            .map(|l| l.activation.name())
            .collect();
        let mut parts = Vec::new();
        if !hidden.is_empty() {
            let mut kinds = hidden.clone();
            kinds.dedup();
            parts.push(format!("{} hidden", kinds.join("/")));
        }
        let output = self.layers[self.layers.len() - 1].activation;
        if output != Activation::Identity {
            parts.push(format!("{output} output"));
        }
        let with_bias = self.layers.iter().any(|l| l.bias.is_some());
        parts.push(if with_bias { "bias" } else { "no bias" }.to_string());
        format!("{shape} ({})", parts.join(", "))
    }
}

/// Parses a width list such as `2,2,1`.
pub fn parse_widths(text: &str) -> Result<Vec<usize>> {
    let widths = text
        .split(',')
        .map(|part| {
            part.trim().parse::<usize>().map_err(|_| {
                Error::InvalidArgument(format!(
                    "layer widths must be positive integers separated by commas, such as 2,2,1 \
                     (got '{}')",
                    crate::error::shown(text)
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    check_widths(&widths)?;
    Ok(widths)
}

fn check_widths(widths: &[usize]) -> Result<()> {
    if widths.len() < 2 {
        return Err(Error::InvalidArgument(format!(
            "a network needs at least an input width and an output width (got {widths:?})"
        )));
    }
    if let Some(pos) = widths.iter().position(|&w| w == 0) {
        return Err(Error::InvalidArgument(format!(
            "width number {} in {widths:?} is 0: every width (inputs, hidden layers, outputs) \
             must be at least 1",
            pos + 1
        )));
    }
    if let Some(pos) = widths.iter().position(|&w| w > MAX_WIDTH) {
        return Err(Error::TooLarge(format!(
            "layer width {pos} is {}: a layer may have at most {MAX_WIDTH} nodes",
            widths[pos]
        )));
    }
    // The weights are held several times over (the network, its gradient, the previous
    // weights, the report): count on four f64 copies.
    let params = widths.windows(2).try_fold(0usize, |sum, w| {
        w[0].checked_add(1)
            .and_then(|fan_in| fan_in.checked_mul(w[1]))
            .and_then(|layer| sum.checked_add(layer))
    });
    crate::limits::check_memory(
        &format!("a network of widths {widths:?}"),
        params.and_then(|p| crate::limits::bytes_for(p, 4 * 8)),
    )
}

/// The widest layer accepted: the GPU kernels index nodes with 32-bit integers.
pub const MAX_WIDTH: usize = u32::MAX as usize;

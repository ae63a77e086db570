//! The JSON model format:
//! `{"format": "downhill-model", "version": 1, "layers": [{"activation": "relu",
//! "weights": [[1, 1], [-1, 1]], "bias": [0, 0]}, ...]}`; `bias` may be `null`.
//!
//! Version 2 adds an optional `"optimizer": {"rule": "adam", "updates": 20, "first": [...],
//! "second": [...]}`: the update rule's state after a run with momentum, Nesterov or Adam
//! (`first`: the momentum buffer or Adam's first moments, `second`: Adam's second moments,
//! both in the flat parameter order), so that `train --init` continues that run exactly.
//! Files without state are written as version 1; both versions are read.

use std::io::Write;
use std::path::Path;

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::network::{Activation, Layer, Network};
use crate::optimizer::OptimizerState;
use crate::output::{write_atomically, Outputs};

/// The `format` field every model file carries.
pub const FORMAT: &str = "downhill-model";
/// The model format version of a file without an update rule's state.
pub const VERSION: u32 = 1;
/// The model format version of a file with an update rule's state.
pub const VERSION_WITH_STATE: u32 = 2;
/// The largest model file read: a model of ten million weights is about 250 MB of JSON; a
/// larger file (or `/dev/zero`) is refused instead of being read until memory runs out.
pub const MAX_FILE_BYTES: u64 = 256 << 20;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelJson {
    format: String,
    version: u32,
    layers: Vec<LayerJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    optimizer: Option<SavedRule>,
}

/// An update rule's state as a model file carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedRule {
    /// The rule's name (`momentum`, `nesterov` or `adam`): a run continues the state only with
    /// the same rule.
    pub rule: String,
    pub updates: u64,
    pub first: Vec<f64>,
    #[serde(default)]
    pub second: Vec<f64>,
}

impl SavedRule {
    /// The state of `rule` after a run, as saved.
    pub fn new(rule: &str, state: &OptimizerState) -> Self {
        SavedRule {
            rule: rule.into(),
            updates: state.updates,
            first: state.first.clone(),
            second: state.second.clone(),
        }
    }

    /// The state to continue from.
    pub fn state(&self) -> OptimizerState {
        OptimizerState {
            updates: self.updates,
            first: self.first.clone(),
            second: self.second.clone(),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerJson {
    activation: String,
    weights: Vec<Vec<f64>>,
    #[serde(default)]
    bias: Option<Vec<f64>>,
}

/// Why a value is refused: the kernels compute in single precision.
const NOT_F32: &str =
    "is not a finite single-precision number (the kernels compute in f32: at most about 3.4e38)";

/// Whether `v` is finite in f64 and still finite as f32.
fn fits_f32(v: f64) -> bool {
    v.is_finite() && (v as f32).is_finite()
}

/// The model as a JSON value (used by `train --json`).
pub fn to_json_value(net: &Network) -> serde_json::Value {
    serde_json::to_value(to_model_json(net)).expect("a model always serialises")
}

fn to_model_json(net: &Network) -> ModelJson {
    ModelJson {
        format: FORMAT.into(),
        version: VERSION,
        optimizer: None,
        layers: net
            .layers()
            .iter()
            .map(|l| LayerJson {
                activation: l.activation.name().into(),
                weights: l.weights.outer_iter().map(|r| r.to_vec()).collect(),
                bias: l.bias.as_ref().map(|b| b.to_vec()),
            })
            .collect(),
    }
}

/// Writes the model to `path` atomically.
pub fn save(net: &Network, path: &Path) -> Result<()> {
    write_atomically(path, |w| write_json(net, w, path))
}

/// Writes the model to `path` as one of a command's `outputs` (put in place by their commit).
pub fn write(outputs: &mut Outputs, net: &Network, path: &Path) -> Result<()> {
    write_with_rule(outputs, net, None, path)
}

/// [`write`], with an update rule's state (a version 2 file) when there is one.
pub fn write_with_rule(
    outputs: &mut Outputs,
    net: &Network,
    rule: Option<&SavedRule>,
    path: &Path,
) -> Result<()> {
    let mut model = to_model_json(net);
    if let Some(rule) = rule {
        model.version = VERSION_WITH_STATE;
        model.optimizer = Some(rule.clone());
    }
    outputs.write(path, |w| write_model(&model, w, path))
}

fn write_json(net: &Network, w: &mut impl Write, path: &Path) -> Result<()> {
    write_model(&to_model_json(net), w, path)
}

fn write_model(model: &ModelJson, w: &mut impl Write, path: &Path) -> Result<()> {
    serde_json::to_writer_pretty(&mut *w, model)
        .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
    writeln!(w).map_err(|e| Error::io(path, e))
}

/// Reads and validates a model file.
pub fn load(path: &Path) -> Result<Network> {
    Ok(load_with_rule(path)?.0)
}

/// Reads and validates a model file, and the update rule's state it carries (version 2).
pub fn load_with_rule(path: &Path) -> Result<(Network, Option<SavedRule>)> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::bad_model(
            path,
            format!(
                "is larger than {} MB, the most downhill reads as a model (its models are JSON \
                 of a few kB to tens of MB)",
                MAX_FILE_BYTES >> 20
            ),
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::bad_model(path, "is not UTF-8 text: not a downhill model"))?;
    parse_with_rule(&text).map_err(|message| Error::bad_model(path, message))
}

/// Parses and validates model JSON text; the error is a message without the file name.
pub fn parse(text: &str) -> std::result::Result<Network, String> {
    Ok(parse_with_rule(text)?.0)
}

/// [`parse`], and the update rule's state the text carries.
fn parse_with_rule(text: &str) -> std::result::Result<(Network, Option<SavedRule>), String> {
    // Editors on some systems start UTF-8 files with a byte-order mark; JSON has no use for it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err("the model file is empty".into());
    }
    let mut model: ModelJson = serde_json::from_str(text).map_err(|e| {
        format!(
            "not a valid downhill model (line {}, column {}): {e}",
            e.line(),
            e.column()
        )
    })?;
    if model.format != FORMAT {
        return Err(format!(
            "\"format\" is \"{}\", expected \"{FORMAT}\"",
            model.format
        ));
    }
    if model.version != VERSION && model.version != VERSION_WITH_STATE {
        return Err(format!(
            "model format version {} is not supported (this build reads versions {VERSION} \
             and {VERSION_WITH_STATE})",
            model.version
        ));
    }
    if model.optimizer.is_some() && model.version == VERSION {
        return Err(format!(
            "\"optimizer\" needs model format version {VERSION_WITH_STATE}"
        ));
    }
    let saved = model.optimizer.take();
    if model.layers.is_empty() {
        return Err("\"layers\" is empty: a model needs at least one layer".into());
    }
    let mut layers = Vec::with_capacity(model.layers.len());
    for (l, layer) in model.layers.into_iter().enumerate() {
        let activation: Activation = layer.activation.parse().map_err(|_| {
            format!(
                "layer {l}: unknown activation \"{}\" (expected \"identity\", \"relu\", \
                 \"tanh\" or \"sigmoid\")",
                layer.activation
            )
        })?;
        let nodes = layer.weights.len();
        let inputs = layer.weights.first().map_or(0, Vec::len);
        if nodes == 0 || inputs == 0 {
            return Err(format!(
                "layer {l}: \"weights\" must hold at least one row with at least one value"
            ));
        }
        if let Some(row) = layer.weights.iter().position(|r| r.len() != inputs) {
            return Err(format!(
                "layer {l}: weights row {row} has {} values, row 0 has {inputs}",
                layer.weights[row].len()
            ));
        }
        if let Some(prev) = layers.last().map(Layer::nodes) {
            if inputs != prev {
                return Err(format!(
                    "layer {l} takes {inputs} inputs but layer {} has {prev} nodes: the layer shapes do not chain",
                    l - 1
                ));
            }
        }
        for (node, row) in layer.weights.iter().enumerate() {
            if let Some(input) = row.iter().position(|w| !fits_f32(*w)) {
                return Err(format!(
                    "layer {l}, node {node}, input {input}: the weight {} {}",
                    crate::error::number(row[input]),
                    NOT_F32
                ));
            }
        }
        let flat: Vec<f64> = layer.weights.into_iter().flatten().collect();
        let weights = Array2::from_shape_vec((nodes, inputs), flat)
            .expect("rows were checked to have equal lengths");
        let bias = match layer.bias {
            None => None,
            Some(b) => {
                if b.len() != nodes {
                    return Err(format!(
                        "layer {l}: \"bias\" has {} values for {nodes} nodes",
                        b.len()
                    ));
                }
                if let Some(node) = b.iter().position(|v| !fits_f32(*v)) {
                    return Err(format!(
                        "layer {l}, node {node}: the bias {} {}",
                        crate::error::number(b[node]),
                        NOT_F32
                    ));
                }
                Some(Array1::from(b))
            }
        };
        layers.push(Layer::new(weights, bias, activation).map_err(|e| format!("layer {l}: {e}"))?);
    }
    let net = Network::new(layers).map_err(|e| e.to_string())?;
    if let Some(saved) = &saved {
        let n = net.param_count();
        let fits = |values: &[f64]| values.is_empty() || values.len() == n;
        if !fits(&saved.first) || !fits(&saved.second) {
            return Err(format!(
                "\"optimizer\": \"first\" and \"second\" must hold one value per parameter \
                 ({n}), or none"
            ));
        }
        if !saved
            .first
            .iter()
            .chain(&saved.second)
            .all(|v| fits_f32(*v))
        {
            return Err(format!("\"optimizer\": a value {NOT_F32}"));
        }
    }
    Ok((net, saved))
}

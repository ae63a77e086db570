//! The JSON model format:
//! `{"format": "downhill-model", "version": 1, "layers": [{"activation": "relu",
//! "weights": [[1, 1], [-1, 1]], "bias": [0, 0]}, ...]}`; `bias` may be `null`.

use std::io::Write;
use std::path::Path;

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::network::{Activation, Layer, Network};
use crate::output::write_atomically;

/// The `format` field every model file carries.
pub const FORMAT: &str = "downhill-model";
/// The model format version this build reads and writes.
pub const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelJson {
    format: String,
    version: u32,
    layers: Vec<LayerJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerJson {
    activation: String,
    weights: Vec<Vec<f64>>,
    #[serde(default)]
    bias: Option<Vec<f64>>,
}

/// The model as a JSON value (used by `train --json`).
pub fn to_json_value(net: &Network) -> serde_json::Value {
    serde_json::to_value(to_model_json(net)).expect("a model always serialises")
}

fn to_model_json(net: &Network) -> ModelJson {
    ModelJson {
        format: FORMAT.into(),
        version: VERSION,
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
    let model = to_model_json(net);
    write_atomically(path, |w| {
        serde_json::to_writer_pretty(&mut *w, &model)
            .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
        writeln!(w).map_err(|e| Error::io(path, e))
    })
}

/// Reads and validates a model file.
pub fn load(path: &Path) -> Result<Network> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse(&text).map_err(|message| Error::bad_model(path, message))
}

/// Parses and validates model JSON text; the error is a message without the file name.
pub fn parse(text: &str) -> std::result::Result<Network, String> {
    if text.trim().is_empty() {
        return Err("the model file is empty".into());
    }
    let model: ModelJson = serde_json::from_str(text).map_err(|e| {
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
    if model.version != VERSION {
        return Err(format!(
            "model format version {} is not supported (this build reads version {VERSION})",
            model.version
        ));
    }
    if model.layers.is_empty() {
        return Err("\"layers\" is empty: a model needs at least one layer".into());
    }
    let mut layers = Vec::with_capacity(model.layers.len());
    for (l, layer) in model.layers.into_iter().enumerate() {
        let activation: Activation = layer.activation.parse().map_err(|_| {
            format!(
                "layer {l}: unknown activation \"{}\" (expected \"identity\" or \"relu\")",
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
        if layer.weights.iter().flatten().any(|w| !w.is_finite()) {
            return Err(format!("layer {l}: a weight is not a finite number"));
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
                if b.iter().any(|v| !v.is_finite()) {
                    return Err(format!("layer {l}: a bias is not a finite number"));
                }
                Some(Array1::from(b))
            }
        };
        layers.push(Layer::new(weights, bias, activation).map_err(|e| format!("layer {l}: {e}"))?);
    }
    Network::new(layers).map_err(|e| e.to_string())
}

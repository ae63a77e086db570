//! What the subcommands share: argument groups, parsers of counts and choices, and how
//! results are printed.

use std::path::PathBuf;

use clap::Args;
use downhill::{Activation, DeviceChoice, LossKind};

/// Network shape options shared by `train` and `generate`.
#[derive(Args, Debug, Clone)]
pub struct ShapeArgs {
    /// Layer widths, inputs first: 2,2,1 is two inputs, a hidden layer of two nodes, one output.
    #[arg(long, value_name = "W,W,...")]
    pub layers: Option<String>,
    /// Activation of the hidden layers (the output layer is always identity) [default: relu].
    #[arg(long, value_name = "relu|identity|tanh|sigmoid", value_parser = parse_activation)]
    pub hidden_activation: Option<Activation>,
    /// Leave the bias out of every layer.
    #[arg(long)]
    pub no_bias: bool,
}

impl ShapeArgs {
    /// The hidden layers' activation: as given, or relu.
    pub fn activation(&self) -> Activation {
        self.hidden_activation.unwrap_or(Activation::Relu)
    }
}

/// Parses a count such as `1000000`, `1_000_000` or `1e6`.
pub fn parse_count(text: &str) -> std::result::Result<usize, String> {
    let clean: String = text.chars().filter(|c| *c != '_' && *c != ',').collect();
    if let Ok(n) = clean.parse::<usize>() {
        return Ok(n);
    }
    let shown = downhill::error::shown(text);
    match clean.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 1e15 => Ok(v as usize),
        Ok(v) if v >= 1e15 || (v.fract() == 0.0 && clean.chars().all(|c| c.is_ascii_digit())) => {
            Err(format!(
                "'{shown}' is too large (at most 999,999,999,999,999; examples: 1000, 1e6)"
            ))
        }
        Ok(v) if v < 0.0 => Err(format!(
            "'{shown}' is negative: expected a count (examples: 1000, 1e6)"
        )),
        _ => Err(format!(
            "'{shown}' is not a whole number (examples: 1000, 1_000_000, 1e6)"
        )),
    }
}

pub fn parse_activation(text: &str) -> std::result::Result<Activation, String> {
    text.parse().map_err(|e: downhill::Error| e.to_string())
}

pub fn parse_loss(text: &str) -> std::result::Result<LossKind, String> {
    text.parse().map_err(|e: downhill::Error| e.to_string())
}

pub fn parse_device(text: &str) -> std::result::Result<DeviceChoice, String> {
    text.parse().map_err(|e: downhill::Error| e.to_string())
}

/// Model and data options shared by `eval` and `predict`.
#[derive(Args, Debug)]
pub struct ModelDataArgs {
    /// The model file (JSON, as written by `train --out`).
    #[arg(long, value_name = "MODEL.json")]
    pub model: PathBuf,
    /// The data file (.csv or .npy; inputs first, targets last).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Where the math runs.
    #[arg(long, value_name = "auto|cpu|gpu", default_value = "auto", value_parser = parse_device)]
    pub device: DeviceChoice,
}

/// Prints one JSON object on stdout.
pub fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("a JSON value always serialises")
    );
}

/// `n` points as text: `1 point`, `1,234,567 points`.
pub fn points(n: usize) -> String {
    match n {
        1 => "1 point".into(),
        _ => format!("{} points", thousands(n)),
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

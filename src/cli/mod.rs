//! Command-line arguments (clap) and the dispatch to each subcommand.

mod bench;
mod evaluate;
mod generate;
mod info;
mod interrupt;
mod landscape;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use downhill::{Activation, DeviceChoice, LossKind, Result};

const EXAMPLES: &str = "\
Examples:
  downhill train                                   # the lesson's 2-2-1 network on 1M synthetic points
  downhill train --points 1e5 --lr 0.1 --steps 500 --out model.json --history loss.csv
  downhill generate --points 10000 --noise 0.1 --out points.csv
  downhill train --data points.csv --layers 2,2,1 --out model.json
  downhill eval --model model.json --data points.csv
  downhill predict --model model.json --data points.csv --out predictions.csv
  downhill train --plot loss.png --out model.json
  downhill landscape --model model.json --data points.csv --weight l1.n0.w0 --descend --out curve.png
  downhill landscape --model model.json --data points.csv --weight l0.n0.w0 --weight l0.n0.w1 --out surface.png
  downhill bench --points 1e5 --layers 2,2,1 --steps 5     # CPU vs GPU timing against this machine's limits
  downhill info

Output: stdout holds the result (the report, or the JSON with --json, or CSV data); messages,
progress and the names of the files written go to stderr. Each subcommand's --help has its own
examples.";

/// Train small dense neural networks by gradient descent on the squared-error loss.
#[derive(Parser, Debug)]
#[command(name = "downhill", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a network by gradient descent (with no data: the lesson's 2-2-1 problem).
    Train(train::TrainArgs),
    /// Loss and gradient (the slope for every weight) of a model on a data file.
    Eval(evaluate::EvalArgs),
    /// One prediction row per input row.
    Predict(evaluate::PredictArgs),
    /// Write a synthetic point set: uniform inputs, teacher-network targets plus noise.
    Generate(generate::GenerateArgs),
    /// The loss over one weight (a curve, with the tangent) or two (a surface), every other
    /// weight held fixed; optionally the gradient-descent steps on them.
    Landscape(landscape::LandscapeArgs),
    /// Time training steps on every path (CPU fused, CPU reference, GPU) against this
    /// machine's measured memory bandwidth and arithmetic peak.
    Bench(bench::BenchArgs),
    /// Version, CPU threads and compute devices.
    #[command(after_help = "Examples:\n  downhill info")]
    Info,
}

/// Network shape options shared by `train` and `generate`.
#[derive(Args, Debug, Clone)]
struct ShapeArgs {
    /// Layer widths, inputs first: 2,2,1 is two inputs, a hidden layer of two nodes, one output.
    #[arg(long, value_name = "W,W,...")]
    layers: Option<String>,
    /// Activation of the hidden layers (the output layer is always identity) [default: relu].
    #[arg(long, value_name = "relu|identity", value_parser = parse_activation)]
    hidden_activation: Option<Activation>,
    /// Leave the bias out of every layer.
    #[arg(long)]
    no_bias: bool,
}

impl ShapeArgs {
    /// The hidden layers' activation: as given, or relu.
    fn activation(&self) -> Activation {
        self.hidden_activation.unwrap_or(Activation::Relu)
    }
}

/// Parses a count such as `1000000`, `1_000_000` or `1e6`.
fn parse_count(text: &str) -> std::result::Result<usize, String> {
    let clean: String = text.chars().filter(|c| *c != '_' && *c != ',').collect();
    if let Ok(n) = clean.parse::<usize>() {
        return Ok(n);
    }
    let shown = downhill::data::shown(text);
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

fn parse_activation(text: &str) -> std::result::Result<Activation, String> {
    text.parse().map_err(|e: downhill::Error| e.to_string())
}

fn parse_loss(text: &str) -> std::result::Result<LossKind, String> {
    text.parse().map_err(|e: downhill::Error| e.to_string())
}

fn parse_device(text: &str) -> std::result::Result<DeviceChoice, String> {
    text.parse().map_err(|e: downhill::Error| e.to_string())
}

/// Model and data options shared by `eval` and `predict`.
#[derive(Args, Debug)]
struct ModelDataArgs {
    /// The model file (JSON, as written by `train --out`).
    #[arg(long, value_name = "MODEL.json")]
    model: PathBuf,
    /// The data file (.csv or .npy; inputs first, targets last).
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Where the math runs.
    #[arg(long, value_name = "auto|cpu|gpu", default_value = "auto", value_parser = parse_device)]
    device: DeviceChoice,
}

/// Runs the parsed command; the exit code of a run that completed (possibly as a failure).
pub fn run(cli: Cli) -> Result<ExitCode> {
    // First of all, so that an early Ctrl-C already ends the command cleanly: at once, removing
    // any output begun. Only `train`'s descent stops gracefully (after the steps in flight).
    let interrupts = interrupt::Interrupts::install(false)?;
    match cli.command {
        Command::Train(args) => train::run(args, interrupts),
        Command::Eval(args) => evaluate::run_eval(args),
        Command::Predict(args) => evaluate::run_predict(args),
        Command::Generate(args) => generate::run(args),
        Command::Landscape(args) => landscape::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Info => info::run(),
    }
}

/// Prints one JSON object on stdout.
fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("a JSON value always serialises")
    );
}

/// `1234567` as `1,234,567`.
fn thousands(n: usize) -> String {
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

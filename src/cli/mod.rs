//! Command-line arguments (clap) and the dispatch to each subcommand.

mod bench;
mod common;
mod evaluate;
mod generate;
mod info;
mod interrupt;
mod landscape;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use downhill::Result;

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
    // Boxed: its options outweigh every other command's.
    Train(Box<train::TrainArgs>),
    /// Loss and gradient (the slope for every weight) of a model on a data file.
    Eval(evaluate::EvalArgs),
    /// One prediction row per input row.
    Predict(evaluate::PredictArgs),
    /// Write a synthetic point set: uniform inputs, teacher-network targets plus noise.
    Generate(generate::GenerateArgs),
    /// The loss over one weight (a curve, with the tangent) or two (a surface), every other
    /// weight held fixed; optionally the gradient-descent steps on them.
    // Boxed too: it takes the update rule's options.
    Landscape(Box<landscape::LandscapeArgs>),
    /// Time training steps on every path (CPU fused, CPU reference, GPU) against this
    /// machine's measured memory bandwidth and arithmetic peak.
    Bench(bench::BenchArgs),
    /// Version, CPU threads and compute devices.
    #[command(after_help = "Examples:\n  downhill info")]
    Info,
}

/// Runs the parsed command; the exit code of a run that completed (possibly as a failure).
pub fn run(cli: Cli) -> Result<ExitCode> {
    // First of all, so that an early Ctrl-C already ends the command cleanly: at once, removing
    // any output begun. Only `train`'s descent stops gracefully (after the steps in flight).
    let interrupts = interrupt::Interrupts::install(false)?;
    match cli.command {
        Command::Train(args) => train::run(*args, interrupts),
        Command::Eval(args) => evaluate::run_eval(args),
        Command::Predict(args) => evaluate::run_predict(args),
        Command::Generate(args) => generate::run(args),
        Command::Landscape(args) => landscape::run(*args),
        Command::Bench(args) => bench::run(args),
        Command::Info => info::run(),
    }
}

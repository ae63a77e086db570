//! `downhill eval` and `downhill predict`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use downhill::data::{save_predictions, Table};
use downhill::{device, model_file, LossKind, Result};
use serde_json::json;

use super::common::{parse_loss, print_json, ModelDataArgs};

const EVAL_EXAMPLES: &str = "\
Examples:
  downhill generate --points 10000 --out points.csv
  downhill train --data points.csv --steps 20 --out model.json
  downhill eval --model model.json --data points.csv
  downhill eval --model model.json --data points.csv --loss sse --json";

const PREDICT_EXAMPLES: &str = "\
Examples:
  downhill predict --model model.json --data points.csv --out predictions.csv
  downhill predict --model model.json --data points.csv --out predictions.npy
  downhill predict --model model.json --data points.csv     # CSV on stdout";

#[derive(Args, Debug)]
#[command(after_help = EVAL_EXAMPLES)]
pub struct EvalArgs {
    #[command(flatten)]
    common: ModelDataArgs,
    /// The loss whose value and gradient are reported (both SSE and MSE are always printed).
    #[arg(long, value_name = "mse|sse", default_value = "mse", value_parser = parse_loss)]
    loss: LossKind,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
#[command(after_help = PREDICT_EXAMPLES)]
pub struct PredictArgs {
    #[command(flatten)]
    common: ModelDataArgs,
    /// Write the predictions here (.csv or .npy) instead of printing CSV on stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub fn run_eval(args: EvalArgs) -> Result<ExitCode> {
    // Under mpirun: every process evaluates its share of the file, the sums are added, and the
    // first process reports (a failing process ends them all).
    #[cfg(feature = "mpi")]
    if let Some(world) = downhill::distributed::World::join()? {
        let evaluated = evaluate_share(&args, &world);
        return match evaluated {
            Ok((evaluation, net, device)) if world.is_root() => {
                report_eval(&args, &evaluation, &net, &device)
            }
            Ok(_) => Ok(ExitCode::SUCCESS),
            Err(downhill::Error::OnEveryProcess { message, exit_code }) => {
                if world.is_root() {
                    eprintln!("downhill: error: {message}");
                }
                Ok(ExitCode::from(exit_code as u8))
            }
            Err(error) => {
                eprintln!("downhill: error: {error}");
                world.abort(error.exit_code())
            }
        };
    }
    let ModelDataArgs {
        model,
        data,
        device,
    } = &args.common;
    let net = model_file::load(model)?;
    let dataset = Table::load(data)?.into_dataset(data, net.inputs(), net.outputs())?;
    let target = device::Target::resolve(*device)?;
    let evaluation = target.evaluate(&net, &dataset)?;
    report_eval(&args, &evaluation, &net, &target.name())
}

/// This process's share of `eval`'s file evaluated on its device and summed with the others'.
#[cfg(feature = "mpi")]
fn evaluate_share(
    args: &EvalArgs,
    world: &downhill::distributed::World,
) -> Result<(downhill::Evaluation, downhill::Network, String)> {
    let ModelDataArgs {
        model,
        data,
        device,
    } = &args.common;
    let net = model_file::load(model)?;
    // A bad row is found by the process whose share holds it: every process stops with its
    // message.
    let dataset = world.agree(
        world
            .read_share(data)
            .and_then(|(table, _)| table.into_dataset(data, net.inputs(), net.outputs())),
    )?;
    let target = device::Target::resolve_among(*device, world.rank())?;
    let mut evaluation = target.evaluate(&net, &dataset)?;
    world.share_sum()(std::slice::from_mut(&mut evaluation), &[&net])?;
    let device = format!("{} x {} processes", target.name(), world.size());
    Ok((evaluation, net, device))
}

/// Prints `eval`'s report of `evaluation` at `net`'s weights on `device`.
fn report_eval(
    args: &EvalArgs,
    evaluation: &downhill::Evaluation,
    net: &downhill::Network,
    device: &str,
) -> Result<ExitCode> {
    let gradient = evaluation.gradient(args.loss);
    let names = net.param_names();
    if args.json {
        let named: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(&gradient)
            .map(|(n, g)| (n.clone(), json!(g)))
            .collect();
        print_json(&json!({
            "points": evaluation.points,
            "sse": evaluation.sse,
            "mse": evaluation.mse(),
            "loss": args.loss.name(),
            "device": device,
            "gradient": named,
        }));
    } else {
        println!("device: {device}");
        println!("points: {}", evaluation.points);
        println!("sse:    {:.9e}", evaluation.sse);
        println!("mse:    {:.9e}", evaluation.mse());
        println!(
            "gradient of the {} (the slope of the loss for each weight):",
            args.loss
        );
        for (name, g) in names.iter().zip(&gradient) {
            println!("  {name:<14} {g:>16.9e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_predict(args: PredictArgs) -> Result<ExitCode> {
    let ModelDataArgs {
        model,
        data,
        device,
    } = &args.common;
    let net = model_file::load(model)?;
    if let Some(out) = &args.out {
        downhill::output::check_writable(out)?;
        downhill::output::check_distinct(
            &[("--out", out)],
            &[("--data", data), ("--model", model)],
        )?;
    }
    let inputs = Table::load(data)?.into_inputs(data, net.inputs(), net.outputs())?;
    downhill::limits::check_memory(
        &format!("predictions for {} points", inputs.ncols()),
        downhill::limits::bytes_for(inputs.ncols(), net.outputs() * 4),
    )?;
    let predictions = device::Target::resolve(*device)?.predict(&net, inputs.view())?;
    match &args.out {
        Some(out) => {
            save_predictions(out, predictions.view())?;
            eprintln!(
                "downhill: wrote {} predictions ({} per point) to {}",
                predictions.ncols(),
                predictions.nrows(),
                out.display()
            );
        }
        None => {
            let header: Vec<String> = (0..net.outputs()).map(|k| format!("pred{k}")).collect();
            println!("{}", header.join(","));
            for point in predictions.columns() {
                let row: Vec<String> = point.iter().map(|v| v.to_string()).collect();
                println!("{}", row.join(","));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

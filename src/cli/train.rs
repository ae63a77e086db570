//! `downhill train`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use downhill::cpu::{CpuEngine, CpuVariant};
use downhill::data::{generate, Table};
use downhill::descent::Observer;
use downhill::gpu::GpuOptions;
use downhill::output::{check_writable, write_atomically};
use downhill::plot;
use downhill::progress::ProgressObserver;
use downhill::verify::{self, Verified};
use downhill::{
    device, model_file, network, Activation, Dataset, Descent, DeviceChoice, Engine, Error,
    LossKind, Network, Outcome, Result, StopReason,
};
use serde_json::json;

use super::interrupt::Interrupts;
use super::{parse_count, parse_device, parse_loss, print_json, thousands, ShapeArgs};

/// Points in the default synthetic set.
const DEFAULT_POINTS: usize = 1_000_000;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training data (.csv or .npy; inputs first, the last columns are targets).
    #[arg(long, value_name = "FILE", conflicts_with = "points")]
    data: Option<PathBuf>,
    /// Size of the synthetic training set when no --data is given (1e6 style accepted).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    points: Option<usize>,
    #[command(flatten)]
    shape: ShapeArgs,
    /// Start from this model's weights (the layer shapes come from the file).
    #[arg(long, value_name = "MODEL.json", conflicts_with_all = ["layers", "no_bias"])]
    init: Option<PathBuf>,
    /// Seed for the initial weights and the synthetic data.
    #[arg(long, default_value_t = 6)]
    seed: u64,
    /// Standard deviation of the gaussian noise on synthetic targets.
    #[arg(long, value_name = "F", default_value_t = 0.05)]
    noise: f64,
    /// Learning rate: the step is `-lr * gradient`.
    #[arg(
        long,
        value_name = "F",
        default_value_t = 0.3,
        allow_negative_numbers = true
    )]
    lr: f64,
    /// Maximum number of steps.
    #[arg(long, value_name = "K", default_value = "200", value_parser = parse_count)]
    steps: usize,
    /// Stop once the gradient norm is below this ("until flat"); 0 disables the rule.
    #[arg(
        long,
        value_name = "F",
        default_value_t = 1e-5,
        allow_negative_numbers = true
    )]
    tol: f64,
    /// The loss to minimise.
    #[arg(long, value_name = "mse|sse", default_value = "mse", value_parser = parse_loss)]
    loss: LossKind,
    /// Where the math runs.
    #[arg(long, value_name = "auto|cpu|gpu", default_value = "auto", value_parser = parse_device)]
    device: DeviceChoice,
    /// Write the trained model here (JSON).
    #[arg(long, value_name = "MODEL.json")]
    out: Option<PathBuf>,
    /// Write the loss history here (CSV: step, loss, gradient_norm).
    #[arg(long, value_name = "LOSS.csv")]
    history: Option<PathBuf>,
    /// Draw the loss against the step into this picture (.png or .svg).
    #[arg(long, value_name = "FILE.png|FILE.svg")]
    plot: Option<PathBuf>,
    /// Draw the --plot loss axis on a log scale.
    #[arg(long, requires = "plot")]
    plot_log: bool,
    /// Run the CPU path in lockstep and compare: the loss at every step and the weights at the
    /// end; exit code 1 if they differ by more than the documented tolerance.
    #[arg(long)]
    verify: bool,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// What `--verify` found.
struct VerifyReport {
    compared: usize,
    loss: f64,
    weights: f64,
}

impl VerifyReport {
    fn passed(&self) -> bool {
        self.loss <= verify::TOLERANCE && self.weights <= verify::TOLERANCE
    }
}

/// Where the training data came from, for the report.
enum Source {
    File(PathBuf),
    Synthetic { teacher: String },
}

pub fn run(args: TrainArgs) -> Result<ExitCode> {
    // First of all, so that an early Ctrl-C already stops the run cleanly.
    let mut interrupts = Interrupts::install()?;
    let descent = Descent {
        learning_rate: args.lr,
        max_steps: args.steps,
        tolerance: args.tol,
        loss: args.loss,
        ..Descent::default()
    };
    descent.validate()?;
    if let Some(path) = &args.plot {
        plot::ImageKind::of(path)?;
    }
    for path in args.out.iter().chain(&args.history).chain(&args.plot) {
        check_writable(path)?;
    }

    let net = initial_network(&args)?;
    let (data, source) = training_data(&args, &net)?;
    let points = data.len();
    let mut progress = ProgressObserver::new(args.steps);
    // Resuming (--init) with an existing history: append to it, numbering on from its end.
    let resume = match (&args.init, &args.history) {
        (Some(_), Some(path)) if path.exists() => Some(read_history(path)?),
        _ => None,
    };
    let gpu = device::open_gpu_engine(args.device, &net, &data, GpuOptions::default())?;
    let (outcome, device_name, verification) = match gpu {
        Some(engine) if !args.verify => {
            // The data now lives on the device; free the host copy (on a software adapter,
            // device memory is host memory too, and 100M points would be held twice).
            drop(data);
            let mut engine = engine;
            let device_name = engine.device();
            let outcome = descent.run(
                &mut engine,
                &mut [&mut progress as &mut dyn Observer, &mut interrupts],
            )?;
            (outcome, device_name, None)
        }
        gpu => {
            let engine: Box<dyn Engine + '_> = match gpu {
                Some(engine) => Box::new(engine),
                None => Box::new(CpuEngine::new(net.clone(), &data, CpuVariant::Fused)?),
            };
            if args.verify {
                let reference = Box::new(CpuEngine::new(net.clone(), &data, CpuVariant::Fused)?);
                let mut verified = Verified::new(engine, reference);
                let device_name = verified.device();
                let outcome = descent.run(
                    &mut verified,
                    &mut [&mut progress as &mut dyn Observer, &mut interrupts],
                )?;
                let report = VerifyReport {
                    compared: verified.compared,
                    loss: verified.worst,
                    weights: verified.weight_deviation()?,
                };
                (outcome, device_name, Some(report))
            } else {
                let mut engine = engine;
                let device_name = engine.device();
                let outcome = descent.run(
                    engine.as_mut(),
                    &mut [&mut progress as &mut dyn Observer, &mut interrupts],
                )?;
                (outcome, device_name, None)
            }
        }
    };

    if let Some(path) = &args.out {
        model_file::save(&outcome.network, path)?;
    }
    let offset = resume.as_ref().map_or(0, |r| r.last_step);
    if let Some(path) = &args.history {
        write_history(path, resume.as_ref(), &outcome)?;
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "Loss during training: {}, {} points, learning rate {}, {}",
            outcome.network.describe(),
            thousands(points),
            args.lr,
            device_name
        );
        plot::loss_curve(
            path,
            &outcome.history,
            &title,
            args.plot_log,
            plot::DEFAULT_SIZE,
        )?;
    }
    if args.json {
        let mut report = report_json(&args, points, &device_name, &outcome);
        if let Some(v) = &verification {
            report["verify"] = json!({
                "steps_compared": v.compared,
                "max_loss_deviation": v.loss,
                "max_weight_deviation": v.weights,
                "tolerance": verify::TOLERANCE,
                "passed": v.passed(),
            });
        }
        print_json(&report);
    } else {
        print_report(&args, points, &source, &device_name, &outcome);
        if let Some(v) = &verification {
            println!(
                "verify: {} steps compared with the CPU path; largest relative deviation {:.3e} \
                 (loss), {:.3e} (weights); tolerance {:e}: {}",
                v.compared,
                v.loss,
                v.weights,
                verify::TOLERANCE,
                if v.passed() { "passed" } else { "FAILED" }
            );
        }
    }
    let interrupted = matches!(outcome.stopped, StopReason::Interrupted);
    if let Some(code) = interrupts.exit_code().filter(|_| interrupted) {
        let mut wrote: Vec<String> = Vec::new();
        if let Some(path) = &args.out {
            wrote.push(format!("the weights to {}", path.display()));
        }
        if let Some(path) = &args.history {
            wrote.push(format!("the loss history to {}", path.display()));
        }
        let last = outcome.history.last().map_or(offset, |r| r.step + offset);
        eprintln!(
            "downhill: interrupted after step {last}; {}",
            if wrote.is_empty() {
                "no --out or --history was given: the weights are printed above".to_string()
            } else {
                format!("wrote {}", wrote.join(" and "))
            }
        );
        return Ok(ExitCode::from(code));
    }
    if let Some(v) = verification.filter(|v| !v.passed()) {
        let error = Error::VerificationFailed(format!(
            "the GPU and CPU paths differ by {:.3e} (loss) and {:.3e} (weights), more than {:e}",
            v.loss,
            v.weights,
            verify::TOLERANCE
        ));
        eprintln!("downhill: error: {error}");
        return Ok(ExitCode::from(error.exit_code() as u8));
    }
    match outcome.failure() {
        Some(error) => {
            eprintln!("downhill: error: {error}");
            Ok(ExitCode::from(error.exit_code() as u8))
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

fn initial_network(args: &TrainArgs) -> Result<Network> {
    if let Some(path) = &args.init {
        return model_file::load(path);
    }
    let widths = match &args.shape.layers {
        Some(text) => network::parse_widths(text)?,
        None => vec![2, 2, 1],
    };
    Network::random(
        &widths,
        args.shape.hidden_activation,
        !args.shape.no_bias,
        args.seed,
    )
}

fn training_data(args: &TrainArgs, net: &Network) -> Result<(Dataset, Source)> {
    if let Some(path) = &args.data {
        let table = Table::load(path)?;
        let data = table
            .into_dataset(path, net.inputs(), net.outputs())
            .map_err(|e| match e {
                Error::BadData { path, message } if args.init.is_none() && args.shape.layers.is_none() => {
                    Error::BadData {
                        path,
                        message: format!("{message}; pass --layers to match the file (for example --layers 3,4,1)"),
                    }
                }
                other => other,
            })?;
        return Ok((data, Source::File(path.clone())));
    }
    let points = args.points.unwrap_or(DEFAULT_POINTS);
    let (teacher, name) = if net.widths() == [2, 2, 1] {
        (
            Network::lesson_baseline(Activation::Relu),
            "the lesson's 2-2-1 network (relu hidden)".to_string(),
        )
    } else {
        let widths = net.widths();
        let teacher = Network::random(
            &widths,
            args.shape.hidden_activation,
            false,
            args.seed ^ 0x7eac,
        )?;
        let name = format!("a random {}", teacher.describe());
        (teacher, name)
    };
    let data = generate(&teacher, points, args.noise, args.seed)?;
    let teacher = format!("{name}, noise {}, seed {}", args.noise, args.seed);
    Ok((data, Source::Synthetic { teacher }))
}

/// An existing history file, read to be appended to.
struct PastHistory {
    /// The file's rows after the header, as they are.
    rows: String,
    /// The last step number in it (0 when it has no rows).
    last_step: usize,
}

fn read_history(path: &Path) -> Result<PastHistory> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut lines = text.lines();
    if lines.next() != Some("step,loss,gradient_norm") {
        return Err(Error::BadData {
            path: path.to_path_buf(),
            message: "not a downhill loss history (expected the header step,loss,gradient_norm); \
                      give another --history to start a new one"
                .into(),
        });
    }
    let mut rows = String::new();
    let mut last_step = 0;
    for (i, line) in lines.enumerate() {
        let step = line.split(',').next().and_then(|s| s.parse::<usize>().ok());
        match step {
            Some(step) if step > last_step => last_step = step,
            _ => {
                return Err(Error::BadCell {
                    path: path.to_path_buf(),
                    line: i as u64 + 2,
                    column: 1,
                    message: format!("expected a step number above {last_step}, found '{line}'"),
                })
            }
        }
        rows.push_str(line);
        rows.push('\n');
    }
    Ok(PastHistory { rows, last_step })
}

/// Writes the history (after `past`, numbering on from its last step), atomically.
fn write_history(path: &Path, past: Option<&PastHistory>, outcome: &Outcome) -> Result<()> {
    let offset = past.map_or(0, |p| p.last_step);
    write_atomically(path, |w| {
        let io = |e| Error::io(path, e);
        writeln!(w, "step,loss,gradient_norm").map_err(io)?;
        if let Some(p) = past {
            w.write_all(p.rows.as_bytes()).map_err(io)?;
        }
        for r in &outcome.history {
            writeln!(w, "{},{:e},{:e}", r.step + offset, r.loss, r.gradient_norm).map_err(io)?;
        }
        Ok(())
    })
}

fn stop_text(stopped: &StopReason, tol: f64) -> String {
    match stopped {
        StopReason::MaxSteps => "reached the step limit".into(),
        StopReason::Flat { gradient_norm } => {
            format!("flat: the gradient norm {gradient_norm:.3e} fell below --tol {tol:e}")
        }
        StopReason::Diverged { step, loss } => format!("diverged at step {step} (loss {loss:e})"),
        StopReason::Failed { step } => format!("the device failed at step {step}"),
        StopReason::Interrupted => "interrupted".into(),
    }
}

fn print_report(args: &TrainArgs, points: usize, source: &Source, device: &str, outcome: &Outcome) {
    let net = &outcome.network;
    let from = match source {
        Source::File(path) => path.display().to_string(),
        Source::Synthetic { teacher } => format!("synthetic, from {teacher}"),
    };
    println!(
        "training {} on {} points ({from})",
        net.describe(),
        thousands(points)
    );
    println!(
        "device {device}; loss {}; learning rate {}; up to {} steps; stop when |gradient| < {:e}",
        args.loss, args.lr, args.steps, args.tol
    );
    println!();
    println!(
        "{:>8}  {:>14}  {:>12}",
        "step",
        args.loss.name(),
        "|gradient|"
    );
    let history = &outcome.history;
    let every = history.len().div_ceil(10).max(1);
    for (i, r) in history.iter().enumerate() {
        if i % every == 0 || i + 1 == history.len() {
            println!(
                "{:>8}  {:>14.6e}  {:>12.4e}",
                r.step, r.loss, r.gradient_norm
            );
        }
    }
    println!();
    println!(
        "final {} {:.6e} after {} steps ({})",
        args.loss,
        outcome.final_loss,
        outcome.steps(),
        stop_text(&outcome.stopped, args.tol)
    );
    let ms = outcome.ms_per_step();
    if ms > 0.0 {
        println!(
            "time per step {ms:.3} ms ({:.0} million points/s)",
            points as f64 / ms / 1e3
        );
    }
    println!();
    println!("weights:");
    for (name, value) in net.param_names().iter().zip(net.params()) {
        println!("  {name:<14} {value:>12.6}");
    }
    if let Some(path) = &args.out {
        println!("model written to {}", path.display());
    }
    if let Some(path) = &args.history {
        println!("loss history written to {}", path.display());
    }
    if let Some(path) = &args.plot {
        println!("loss curve drawn in {}", path.display());
    }
}

fn report_json(
    args: &TrainArgs,
    points: usize,
    device: &str,
    outcome: &Outcome,
) -> serde_json::Value {
    json!({
        "steps": outcome.steps(),
        "final_loss": outcome.final_loss,
        "loss": args.loss.name(),
        "loss_history": outcome.history.iter().map(|r| r.loss).collect::<Vec<_>>(),
        "gradient_norm_history": outcome.history.iter().map(|r| r.gradient_norm).collect::<Vec<_>>(),
        "stopped": outcome.stopped.name(),
        "device": device,
        "ms_per_step": outcome.ms_per_step(),
        "points": points,
        "learning_rate": args.lr,
        "network": outcome.network.describe(),
        "model": model_file::to_json_value(&outcome.network),
    })
}

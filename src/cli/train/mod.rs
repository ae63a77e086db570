//! `downhill train`.

mod history;
mod report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use downhill::cpu::{CpuEngine, CpuVariant};
use downhill::data::{generate, Table};
use downhill::descent::Observer;
use downhill::device::{OpenEngine, Target};
use downhill::error::number;
use downhill::limits::check_memory;
use downhill::output::{check_distinct, check_output, Outputs};
use downhill::plot;
use downhill::progress::ProgressObserver;
use downhill::verify::Verified;
use downhill::{
    model_file, network, Activation, Dataset, Descent, DeviceChoice, Engine, Error, LossKind,
    Network, Result, StopReason,
};

use super::interrupt::Interrupts;
use super::{parse_count, parse_device, parse_loss, print_json, thousands, ShapeArgs};

/// Points in the default synthetic set.
const DEFAULT_POINTS: usize = 1_000_000;

const EXAMPLES: &str = "\
Examples:
  downhill train                                  # the lesson's 2-2-1 network on 1M synthetic points
  downhill train --points 1e5 --lr 0.3 --steps 500 --out model.json --history loss.csv
  downhill train --data points.csv --layers 2,8,1 --lr 0.1 --out model.json
  downhill train --init model.json --data points.csv --steps 100   # continue from a model
  downhill train --points 1000 --loss sse --lr 1e-4 --no-bias --tol 0 --json
  downhill train --points 1e5 --plot loss.png --plot-log
  downhill train --points 1e5 --device gpu --verify";

#[derive(Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct TrainArgs {
    /// Training data (.csv or .npy; inputs first, the last columns are targets).
    #[arg(long, value_name = "FILE", conflicts_with = "points")]
    data: Option<PathBuf>,
    /// Size of the synthetic training set when no --data is given (1e6 style accepted).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    points: Option<usize>,
    #[command(flatten)]
    shape: ShapeArgs,
    /// Start from this model's weights (the layer shapes and activations come from the file).
    #[arg(long, value_name = "MODEL.json", conflicts_with_all = ["layers", "no_bias", "hidden_activation"])]
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
        allow_hyphen_values = true
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
        allow_hyphen_values = true
    )]
    tol: f64,
    /// The loss to minimise. The SSE grows with the number of points, and so does its
    /// gradient: with sse the learning rate must shrink in proportion (1e-4 for 1,000 points
    /// is about what 0.2 is for the MSE).
    #[arg(long, value_name = "mse|sse", default_value = "mse", value_parser = parse_loss)]
    loss: LossKind,
    /// Where the math runs.
    #[arg(long, value_name = "auto|cpu|gpu", default_value = "auto", value_parser = parse_device)]
    device: DeviceChoice,
    /// Write the trained model here (JSON).
    #[arg(long, value_name = "MODEL.json")]
    out: Option<PathBuf>,
    /// Write the loss history here (CSV: step, loss, gradient_norm: the state before each
    /// step, then the final state). With --init, an existing history is continued.
    #[arg(long, value_name = "LOSS.csv")]
    history: Option<PathBuf>,
    /// Draw the loss against the step into this picture (.png or .svg).
    #[arg(long, value_name = "FILE.png|FILE.svg")]
    plot: Option<PathBuf>,
    /// Draw the --plot loss axis on a log scale.
    #[arg(long, requires = "plot")]
    plot_log: bool,
    /// Run a second path in lockstep and compare (the GPU against the fused CPU kernel, the
    /// fused CPU kernel against the f64 reference): every step's loss and gradient norm, where
    /// and why each stopped, and the weights at the end; exit code 1 if they disagree.
    #[arg(long)]
    verify: bool,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// Where the training data came from, for the report.
enum Source {
    File(PathBuf),
    Synthetic { teacher: String },
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::File(path) => path.display().to_string(),
            Source::Synthetic { teacher } => format!("synthetic, from {teacher}"),
        }
    }
}

/// Set only by the tests of `--verify` itself: the relative amount by which the checked
/// engine's starting weights are moved, so that verification has something to find.
const PERTURB_VARIABLE: &str = "DOWNHILL_VERIFY_PERTURB";

pub fn run(args: TrainArgs, interrupts: Interrupts) -> Result<ExitCode> {
    let mut interrupts = interrupts;
    let descent = Descent {
        learning_rate: args.lr,
        max_steps: args.steps,
        tolerance: args.tol,
        loss: args.loss,
        ..Descent::default()
    };
    descent.validate()?;
    check_outputs(&args)?;

    let net = initial_network(&args)?;
    let target = Target::resolve(args.device)?;
    if args.verify && !target.is_gpu() && args.data.is_none() {
        // The f64 reference holds every layer for every point: refuse before making the data.
        let points = args.points.unwrap_or(DEFAULT_POINTS);
        check_memory(
            &format!(
                "--verify with the f64 reference kernel on {} points of {}",
                thousands(points),
                net.describe()
            ),
            downhill::cpu::reference::memory_needed(&net, points),
        )?;
    }
    let (data, source) = training_data(&args, &net)?;
    let points = data.len();
    // Continuing (--init) an existing history: append to it, numbering on from its end.
    let resume = match (&args.init, &args.history) {
        (Some(_), Some(path)) if path.exists() => Some(history::read(path)?),
        (None, Some(path)) if path.is_file() => {
            eprintln!(
                "downhill: {} exists and will be replaced (only a run with --init continues a \
                 history)",
                path.display()
            );
            None
        }
        _ => None,
    };
    let offset = resume.as_ref().map_or(0, history::PastHistory::offset);
    let mut progress = ProgressObserver::new(args.steps);
    let opened = target.engine(net.clone(), &data)?;
    let on_gpu = opened.is_gpu();
    let perturbed = perturbation_for_tests()?;
    // From here to the end of the descent a first Ctrl-C stops after the steps in flight and
    // the weights reached are written; before and after, it ends the command at once.
    interrupts.set_graceful(true);
    let mut observers = [&mut progress as &mut dyn Observer, &mut interrupts];
    let (outcome, device_name, verification) = match (opened, args.verify) {
        #[cfg(feature = "gpu")]
        (OpenEngine::Gpu(mut engine), false) => {
            // The data now lives on the device; free the host copy (on a software adapter,
            // device memory is host memory too, and 100M points would be held twice).
            drop(data);
            let device_name = engine.device();
            (
                descent.run(engine.as_mut(), &mut observers)?,
                device_name,
                None,
            )
        }
        (opened, false) => {
            let mut engine = opened.boxed();
            let device_name = engine.device();
            (
                descent.run(engine.as_mut(), &mut observers)?,
                device_name,
                None,
            )
        }
        (opened, true) => {
            let checked = match perturbed {
                Some(amount) => Box::new(Perturbed {
                    inner: opened.boxed(),
                    amount,
                }),
                None => opened.boxed(),
            };
            // The GPU is checked against the fused CPU kernel; that kernel against the f64
            // reference (checking it against itself could never fail).
            let variant = if on_gpu {
                CpuVariant::Fused
            } else {
                CpuVariant::Reference
            };
            let against = Box::new(CpuEngine::new(net.clone(), &data, variant)?);
            let mut verified = Verified::new(checked, against);
            let device_name = verified.device();
            let outcome = descent.run(&mut verified, &mut observers)?;
            (outcome, device_name, Some(verified.report()?))
        }
    };

    interrupts.set_graceful(false);
    // Every output is written in full before any is put in place.
    let mut outputs = Outputs::new();
    if let Some(path) = &args.out {
        model_file::write(&mut outputs, &outcome.network, path)?;
    }
    if let Some(path) = &args.history {
        history::write(&mut outputs, path, resume.as_ref(), &outcome)?;
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "Loss during training: {}, {} points, learning rate {}, {}",
            outcome.network.describe(),
            thousands(points),
            number(args.lr),
            device_name
        );
        let picture = plot::loss_curve_bytes(
            path,
            &outcome.history,
            offset,
            &title,
            args.plot_log,
            plot::DEFAULT_SIZE,
        )?;
        outputs.write(path, |w| {
            use std::io::Write;
            w.write_all(&picture).map_err(|e| Error::io(path, e))
        })?;
    }
    outputs.commit()?;

    let cx = report::Context {
        args: &args,
        points,
        source: source.describe(),
        device: &device_name,
        offset,
    };
    if args.json {
        print_json(&report::json(&cx, &outcome, verification.as_ref()));
    } else {
        report::print_text(&cx, &outcome, verification.as_ref());
    }
    let mut wrote: Vec<String> = Vec::new();
    if let Some(path) = &args.out {
        wrote.push(format!("the model to {}", path.display()));
    }
    if let Some(path) = &args.history {
        wrote.push(format!("the loss history to {}", path.display()));
    }
    if let Some(path) = &args.plot {
        wrote.push(format!("the loss curve to {}", path.display()));
    }
    let interrupted = matches!(outcome.stopped, StopReason::Interrupted);
    if let Some(code) = interrupts.exit_code().filter(|_| interrupted) {
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
    if !wrote.is_empty() {
        eprintln!("downhill: wrote {}", wrote.join(", "));
    }
    let failure = verification
        .as_ref()
        .and_then(|v| v.failure())
        .or_else(|| outcome.failure());
    match failure {
        Some(error) => {
            eprintln!("downhill: error: {error}");
            Ok(ExitCode::from(error.exit_code() as u8))
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Every output path checked before any work: each can be written, none is another or the
/// training data.
fn check_outputs(args: &TrainArgs) -> Result<()> {
    if let Some(path) = &args.plot {
        plot::ImageKind::of(path)?;
    }
    let outputs: Vec<(&str, &Path)> = [
        ("--out", &args.out),
        ("--history", &args.history),
        ("--plot", &args.plot),
    ]
    .into_iter()
    .filter_map(|(flag, path)| path.as_deref().map(|p| (flag, p)))
    .collect();
    for (_, path) in &outputs {
        check_output(path)?;
    }
    let inputs: Vec<(&str, &Path)> = args
        .data
        .as_deref()
        .map(|p| ("--data", p))
        .into_iter()
        .collect();
    check_distinct(&outputs, &inputs)
}

/// The amount `DOWNHILL_VERIFY_PERTURB` asks for (tests of `--verify` only).
fn perturbation_for_tests() -> Result<Option<f64>> {
    let Ok(text) = std::env::var(PERTURB_VARIABLE) else {
        return Ok(None);
    };
    text.parse()
        .map(Some)
        .map_err(|_| Error::InvalidArgument(format!("{PERTURB_VARIABLE}={text} is not a number")))
}

/// An engine whose update is wrong by a relative `amount` (its weights moved after every round),
/// as a faulty kernel's would be: what `--verify` must catch. Used only by the tests of
/// `--verify` itself, through `DOWNHILL_VERIFY_PERTURB`.
struct Perturbed<'a> {
    inner: Box<dyn Engine + 'a>,
    amount: f64,
}

impl Engine for Perturbed<'_> {
    fn device(&self) -> String {
        self.inner.device()
    }

    fn run_steps(
        &mut self,
        first_step: usize,
        count: usize,
        rule: &downhill::descent::StepRule,
    ) -> Result<downhill::descent::Round> {
        let round = self.inner.run_steps(first_step, count, rule)?;
        let mut moved = self.inner.network()?;
        let params: Vec<f64> = moved
            .params()
            .iter()
            .map(|p| p * (1.0 + self.amount) + self.amount)
            .collect();
        moved.set_params(&params)?;
        self.inner.set_network(&moved)?;
        Ok(round)
    }

    fn evaluate(&mut self) -> Result<downhill::Evaluation> {
        self.inner.evaluate()
    }

    fn network(&mut self) -> Result<Network> {
        self.inner.network()
    }

    fn set_network(&mut self, net: &Network) -> Result<()> {
        self.inner.set_network(net)
    }

    fn preferred_round(&self) -> usize {
        self.inner.preferred_round()
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
        args.shape.activation(),
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
        let teacher = Network::random(&widths, args.shape.activation(), false, args.seed ^ 0x7eac)?;
        let name = format!("a random {}", teacher.describe());
        (teacher, name)
    };
    let data = generate(&teacher, points, args.noise, args.seed)?;
    let teacher = format!("{name}, noise {}, seed {}", number(args.noise), args.seed);
    Ok((data, Source::Synthetic { teacher }))
}

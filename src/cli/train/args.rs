//! `train`'s options (clap).

use std::path::PathBuf;

use clap::Args;
use downhill::optimizer::{Optimizer, Schedule, UpdateRule};
use downhill::{DeviceChoice, Error, LossKind, Result};

use crate::cli::common::{parse_count, parse_device, parse_loss, ShapeArgs};

const EXAMPLES: &str = "\
Examples:
  downhill train                                  # the lesson's 2-2-1 network on 1M synthetic points
  downhill train --points 1e5 --lr 0.3 --steps 500 --out model.json --history loss.csv
  downhill train --data points.csv --layers 2,8,1 --lr 0.1 --out model.json
  downhill train --init model.json --data points.csv --steps 100   # continue from a model
  downhill train --points 1000 --loss sse --lr 1e-4 --no-bias --tol 0 --json
  downhill train --points 1e5 --plot loss.png --plot-log
  downhill train --points 1e5 --device gpu --verify
  downhill train --points 1e5 --lr 0.001,0.01,0.1,1,10 --plot lrs.png   # a sweep, one picture
  downhill train --points 1e5 --lr 0.1,0.3 --init-seed 1,2,3 --out runs/ --history runs.csv
  downhill train --layers 2,8,1 --optimizer adam --lr 0.01 --steps 500   # PyTorch's Adam rule
  downhill train --optimizer nesterov --momentum 0.8 --lr 0.05 --lr-schedule step:50:0.5
  downhill train --layers 2,16,1 --points 1e4 --optimizer adam --lr 0.01 --steps 2000 \
      --validation 0.2 --patience 50 --plot fit.png   # held-out loss, early stopping
  downhill train --layers 8,64,64,1 --points 1e4 --optimizer adam --lr 0.001 --batch-size 200 \
      --epochs 20 --validation 0.1 --patience 3 --plot fit.png   # scikit-learn's defaults";

#[derive(Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct TrainArgs {
    /// Training data (.csv or .npy; inputs first, the last columns are targets).
    #[arg(long, value_name = "FILE", conflicts_with = "points")]
    pub data: Option<PathBuf>,
    /// Size of the synthetic training set when no --data is given (1e6 style accepted).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub points: Option<usize>,
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// Start from this model's weights (the layer shapes and activations come from the file).
    #[arg(long, value_name = "MODEL.json", conflicts_with_all = ["layers", "no_bias", "hidden_activation"])]
    pub init: Option<PathBuf>,
    /// Seed for the initial weights and the synthetic data (--init-seed sets the weights'
    /// seeds apart).
    #[arg(long, default_value_t = 6)]
    pub seed: u64,
    /// Seeds for the initial weights only, comma-separated: one run per seed (and per --lr).
    /// Default: --seed.
    #[arg(
        long,
        value_name = "SEED[,SEED...]",
        value_delimiter = ',',
        conflicts_with = "init"
    )]
    pub init_seed: Vec<u64>,
    /// Standard deviation of the gaussian noise on synthetic targets.
    #[arg(long, value_name = "F", default_value_t = 0.05)]
    pub noise: f64,
    /// Learning rate: the step is `-lr * gradient`. A comma-separated list sweeps: one run
    /// per rate (and per --init-seed), all stepped together from one pass over the data.
    #[arg(
        long,
        value_name = "F[,F...]",
        default_value = "0.3",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    pub lr: Vec<f64>,
    /// Maximum number of steps (one per batch with --batch-size).
    #[arg(long, value_name = "K", default_value = "200", value_parser = parse_count)]
    pub steps: usize,
    /// Maximum number of epochs (passes over the training points) instead of --steps: with
    /// --batch-size, each epoch is a step per batch; at full batch, one step.
    #[arg(long, value_name = "E", value_parser = parse_count, conflicts_with = "steps")]
    pub epochs: Option<usize>,
    /// Take one step per batch of B points, the points shuffled every epoch by a
    /// permutation drawn from --seed (the same on the CPU and the GPU); the last batch keeps
    /// what is left and is averaged over its own points. Default: every point (full batch).
    #[arg(long, value_name = "B", value_parser = parse_count)]
    pub batch_size: Option<usize>,
    /// Stop once the gradient norm is below this ("until flat"); 0 disables the rule.
    #[arg(
        long,
        value_name = "F",
        default_value_t = 1e-5,
        allow_hyphen_values = true
    )]
    pub tol: f64,
    /// The loss to minimise. The SSE grows with the number of points, and so does its
    /// gradient: with sse the learning rate must shrink in proportion (1e-4 for 1,000 points
    /// is about what 0.2 is for the MSE).
    #[arg(long, value_name = "mse|sse", default_value = "mse", value_parser = parse_loss)]
    pub loss: LossKind,
    /// Where the math runs.
    #[arg(long, value_name = "auto|cpu|gpu", default_value = "auto", value_parser = parse_device)]
    pub device: DeviceChoice,
    /// Write the trained model here (JSON). With several runs, a directory: one model file
    /// per run, named by its learning rate and seed.
    #[arg(long, value_name = "MODEL.json|DIR")]
    pub out: Option<PathBuf>,
    /// Write the loss history here (CSV: step, loss, gradient_norm: the state before each
    /// step, then the final state). With --init, an existing history is continued. With
    /// several runs, a new file: run, learning_rate, init_seed, step, loss, gradient_norm.
    #[arg(long, value_name = "LOSS.csv")]
    pub history: Option<PathBuf>,
    /// Draw the loss against the step into this picture (.png or .svg); with several runs,
    /// one curve per run.
    #[arg(long, value_name = "FILE.png|FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Draw the --plot loss axis on a log scale.
    #[arg(long, requires = "plot")]
    pub plot_log: bool,
    /// Run a second path in lockstep and compare (the GPU against the fused CPU kernel, the
    /// fused CPU kernel against the f64 reference): every step's loss and gradient norm, where
    /// and why each stopped, and the weights at the end; exit code 1 if they disagree.
    #[arg(long)]
    pub verify: bool,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub optimizer: OptimizerArgs,
    /// Hold out this fraction of the points (picked by --seed) and record their loss after
    /// every epoch (every step at full batch): a column of --history, a second curve in
    /// --plot, validation_loss_history in --json. In a sweep, every run on the same points
    /// (in --json and the report).
    #[arg(long, value_name = "F", allow_hyphen_values = true)]
    pub validation: Option<f64>,
    /// Stop once the validation loss has not fallen for this many epochs, and go back to the
    /// weights that had the lowest (stopped: early); in a sweep, each run on its own.
    #[arg(long, value_name = "N", requires = "validation", value_parser = parse_count)]
    pub patience: Option<usize>,
}

/// How each step turns the gradient into an update (src/optimizer.rs writes each rule out).
#[derive(Args, Debug, Clone)]
pub struct OptimizerArgs {
    /// The update rule: gd (the lesson's `w - lr * gradient`), momentum, nesterov or adam,
    /// each exactly as PyTorch's torch.optim.SGD and torch.optim.Adam.
    #[arg(
        long,
        value_name = "gd|momentum|nesterov|adam",
        default_value = "gd",
        value_parser = ["gd", "momentum", "nesterov", "adam"]
    )]
    pub optimizer: String,
    /// The momentum of --optimizer momentum or nesterov [default: 0.9].
    #[arg(long, value_name = "F", allow_hyphen_values = true)]
    pub momentum: Option<f64>,
    /// Adam's decay of its first moment [default: 0.9].
    #[arg(long, value_name = "F", allow_hyphen_values = true)]
    pub beta1: Option<f64>,
    /// Adam's decay of its second moment [default: 0.999].
    #[arg(long, value_name = "F", allow_hyphen_values = true)]
    pub beta2: Option<f64>,
    /// Adam's term added to the root of its second moment [default: 1e-8].
    #[arg(long, value_name = "F", allow_hyphen_values = true)]
    pub eps: Option<f64>,
    /// Added to each weight's gradient times the weight (PyTorch's weight_decay), every rule.
    #[arg(
        long,
        value_name = "F",
        default_value_t = 0.0,
        allow_hyphen_values = true
    )]
    pub weight_decay: f64,
    /// How the learning rate changes: constant; step:EVERY:FACTOR (times FACTOR every EVERY
    /// steps); exp:FACTOR (times FACTOR every step); cosine (half a cosine down to 0 over the
    /// steps). With train --batch-size, EVERY and exp count epochs; train's --history gets
    /// each step's rate.
    #[arg(
        long,
        value_name = "constant|step:EVERY:FACTOR|exp:FACTOR|cosine",
        default_value = "constant"
    )]
    pub lr_schedule: String,
}

impl OptimizerArgs {
    /// The rate schedule for a run of `steps` steps, `per_epoch` to an epoch (the schedule's
    /// EVERY counts epochs; the rule counts updates).
    fn schedule(&self, steps: usize, per_epoch: usize) -> Result<Schedule> {
        let text = self.lr_schedule.as_str();
        let bad = || {
            Error::InvalidArgument(format!(
                "--lr-schedule '{}': expected constant, step:EVERY:FACTOR, exp:FACTOR or cosine \
                 (such as step:100:0.5 or exp:0.99)",
                downhill::error::shown(text)
            ))
        };
        let parts: Vec<&str> = text.split(':').collect();
        let schedule = match parts[..] {
            ["constant"] => Schedule::Constant,
            ["cosine"] => Schedule::Cosine {
                total: steps as u64,
            },
            ["exp", factor] => Schedule::Exp {
                factor: factor.parse().map_err(|_| bad())?,
            },
            ["step", every, factor] => Schedule::Step {
                every: every.parse().map_err(|_| bad())?,
                factor: factor.parse().map_err(|_| bad())?,
            },
            _ => return Err(bad()),
        };
        schedule.validate()?;
        Ok(match schedule {
            _ if per_epoch == 1 => schedule,
            // Once per epoch: a decay every `per_epoch` updates.
            Schedule::Exp { factor } => Schedule::Step {
                every: per_epoch as u64,
                factor,
            },
            Schedule::Step { every, factor } => Schedule::Step {
                every: every.saturating_mul(per_epoch as u64),
                factor,
            },
            other => other,
        })
    }

    /// The update rule the flags ask for, for a run of `steps` steps, `per_epoch` to an
    /// epoch; a constant given to a rule that has none is refused.
    pub fn rule(&self, steps: usize, per_epoch: usize) -> Result<UpdateRule> {
        let misplaced = |flag: &str, rules: &str| {
            Err(Error::InvalidArgument(format!(
                "{flag} applies to --optimizer {rules}, not {}",
                self.optimizer
            )))
        };
        let adam = self.optimizer == "adam";
        let momentum = matches!(self.optimizer.as_str(), "momentum" | "nesterov");
        if self.momentum.is_some() && !momentum {
            return misplaced("--momentum", "momentum or nesterov");
        }
        for (flag, value) in [
            ("--beta1", self.beta1),
            ("--beta2", self.beta2),
            ("--eps", self.eps),
        ] {
            if value.is_some() && !adam {
                return misplaced(flag, "adam");
            }
        }
        let optimizer = match self.optimizer.as_str() {
            "adam" => Optimizer::Adam {
                beta1: self.beta1.unwrap_or(0.9),
                beta2: self.beta2.unwrap_or(0.999),
                eps: self.eps.unwrap_or(1e-8),
            },
            "momentum" | "nesterov" => Optimizer::Momentum {
                momentum: self.momentum.unwrap_or(0.9),
                nesterov: self.optimizer == "nesterov",
            },
            _ => Optimizer::Gd,
        };
        let rule = UpdateRule {
            optimizer,
            weight_decay: self.weight_decay,
            schedule: self.schedule(steps, per_epoch)?,
        };
        rule.validate()?;
        Ok(rule)
    }
}

//! The descent loop shared by every compute path: "find the slope, take a step downhill,
//! repeat until flat".
//!
//! The loop (the executor) is separate from the engines that compute the loss and gradient and
//! apply the step rule (CPU or GPU, see [`Engine`]). An engine runs steps in rounds; between
//! rounds the loop records history, calls observers and decides whether to go on.

use std::fmt;
use std::time::{Duration, Instant};

use crate::error::{number, Error, Result};
use crate::loss::{norm, Evaluation, LossKind};
use crate::network::Network;
use crate::optimizer::{OptimizerState, UpdateRule};

/// One step of gradient descent as recorded in the history.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepRecord {
    /// 1-based step number.
    pub step: usize,
    /// The loss before this step's update.
    pub loss: f64,
    /// Euclidean norm of the gradient before this step's update.
    pub gradient_norm: f64,
}

/// What every engine needs to take a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepRule {
    pub learning_rate: f64,
    pub loss: LossKind,
    /// Stop (without updating) once the gradient norm is below this; 0 disables the rule.
    pub tolerance: f64,
    /// Stop (without updating, and going back to the weights before the previous update) once
    /// the loss is above this or not finite.
    pub divergence_limit: f64,
    /// How the gradient becomes an update (plain descent unless asked otherwise).
    pub update: UpdateRule,
}

/// Sums evaluations over the shares of the points that several processes hold (data-parallel
/// descent): replaces `evaluations`, this process's (one per run), with the sums over every
/// share, so that every process takes the same steps. It is given the weights evaluated, for
/// checks that every process holds the same ones.
pub type ShareSum = Box<dyn FnMut(&mut [Evaluation], &[&Network]) -> Result<()>>;

/// Why an engine stopped inside a round.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EngineStop {
    /// The gradient norm fell below the tolerance at `step` (no update was made).
    Flat { step: usize, gradient_norm: f64 },
    /// The loss at `step` was not finite or exploded; the engine went back to the last weights
    /// whose loss passed the checks.
    Diverged { step: usize, loss: f64 },
}

/// What an engine reports for one round of steps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Round {
    /// One record per update made.
    pub records: Vec<StepRecord>,
    pub stop: Option<EngineStop>,
}

/// A compute path that owns the weights and the data and takes descent steps.
pub trait Engine {
    /// A description of the device, such as `cpu (fused, 2 threads)`.
    fn device(&self) -> String;

    /// Runs up to `count` steps numbered from `first_step`, applying `rule` at every step.
    fn run_steps(&mut self, first_step: usize, count: usize, rule: &StepRule) -> Result<Round>;

    /// The loss and its gradient at the current weights.
    fn evaluate(&mut self) -> Result<Evaluation>;

    /// The current weights.
    fn network(&mut self) -> Result<Network>;

    /// Continues from `net`'s weights (of the engine's shape). Engines that cannot say so.
    fn set_network(&mut self, net: &Network) -> Result<()> {
        let _ = net;
        Err(Error::Unsupported(format!(
            "{} cannot take new weights mid-run",
            self.device()
        )))
    }

    /// The weights before the last update: what a divergence at the next step goes back to
    /// (`None`: no update yet, or an engine that cannot say).
    fn previous_network(&mut self) -> Result<Option<Network>> {
        Ok(None)
    }

    /// Continues from `net`, with `previous` as the weights before the last update (so that
    /// a divergence at the next step goes back to them, as on the engine they came from).
    fn set_network_after(&mut self, net: &Network, previous: &Network) -> Result<()> {
        let _ = previous;
        self.set_network(net)
    }

    /// What the update rule carries from step to step now (saved with the weights, so that a
    /// run with momentum or Adam can continue exactly).
    fn optimizer_state(&mut self) -> Result<OptimizerState> {
        Ok(OptimizerState::default())
    }

    /// Continues the update rule from `state` (a resumed run).
    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        let _ = state;
        Err(Error::Unsupported(format!(
            "{} cannot continue an update rule's state",
            self.device()
        )))
    }

    /// How many steps to run per round when the caller has no preference.
    fn preferred_round(&self) -> usize {
        10
    }
}

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StopReason {
    /// All requested steps were taken.
    MaxSteps,
    /// The gradient norm fell below the tolerance: the lesson's "somewhere flat".
    Flat { gradient_norm: f64, tolerance: f64 },
    /// The loss became non-finite or exploded at `step`.
    Diverged { step: usize, loss: f64 },
    /// The engine failed at `step` (for example, the GPU device was lost); the outcome holds
    /// the last weights the engine could still report.
    Failed { step: usize },
    /// An observer asked to stop (an interrupt): the run ended after the round in flight.
    Interrupted,
    /// The validation loss did not improve for the patience's epochs: the run went back to
    /// the weights after step `best_step` (the end of an epoch), the lowest validation loss
    /// seen.
    Early { best_step: usize },
}

impl StopReason {
    /// A short machine-readable name.
    pub fn name(&self) -> &'static str {
        match self {
            StopReason::MaxSteps => "max_steps",
            StopReason::Flat { .. } => "flat",
            StopReason::Diverged { .. } => "diverged",
            StopReason::Failed { .. } => "failed",
            StopReason::Interrupted => "interrupted",
            StopReason::Early { .. } => "early",
        }
    }

    /// The error to report for a run that diverged, if it did.
    pub fn failure(&self) -> Option<Error> {
        match *self {
            StopReason::Diverged { step, loss } => Some(Error::Diverged { step, loss }),
            _ => None,
        }
    }
}

/// What the report says: `flat: the gradient norm 9.1e-7 fell below --tol 1e-6`.
impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::MaxSteps => f.write_str("reached the step limit"),
            StopReason::Flat {
                gradient_norm,
                tolerance,
            } => write!(
                f,
                "flat: the gradient norm {gradient_norm:.3e} fell below --tol {}",
                number(*tolerance)
            ),
            StopReason::Diverged { step, loss } => {
                write!(f, "diverged at step {step} (loss {loss:e})")
            }
            StopReason::Failed { step } => write!(f, "the device failed at step {step}"),
            StopReason::Interrupted => f.write_str("interrupted"),
            StopReason::Early { best_step } => write!(
                f,
                "early: no lower validation loss for --patience epochs; back at the weights \
                 after step {best_step}, the lowest"
            ),
        }
    }
}

/// A held-out set's loss after every epoch (every step at full batch), and early stopping on
/// it ([`Descent::run_validated`]).
pub struct Validation<'a> {
    /// The validation loss of a network's weights.
    pub loss: &'a mut dyn FnMut(&Network) -> Result<f64>,
    /// Stop after this many epochs without a lower validation loss, going back to the weights
    /// that had the lowest; `None` never stops early.
    pub patience: Option<usize>,
}

/// Something told about progress after every round.
pub trait Observer {
    /// `history` is everything so far; `max_steps` the planned total.
    fn observe(&mut self, history: &[StepRecord], max_steps: usize);
    /// Called once when the run is over.
    fn finish(&mut self) {}
    /// Asked after every round: `true` ends the run there (weights and history kept).
    fn stop_requested(&self) -> bool {
        false
    }
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub history: Vec<StepRecord>,
    pub stopped: StopReason,
    /// The loss of `network`, the weights after the last step.
    pub final_loss: f64,
    /// The gradient norm there (of the same loss).
    pub final_gradient_norm: f64,
    pub network: Network,
    /// Time spent in the steps (not counting the final loss evaluation).
    pub elapsed: Duration,
    /// What made the engine fail, when `stopped` is [`StopReason::Failed`].
    pub engine_error: Option<String>,
    /// With a validation set, its loss after every epoch (`[k]` after epoch k+1, the step
    /// `(k + 1) * steps_per_epoch`).
    pub validation_history: Vec<f64>,
    /// Steps per epoch (1 at full batch, the batches of an epoch with mini-batches).
    pub steps_per_epoch: usize,
}

impl Outcome {
    /// Number of updates made.
    pub fn steps(&self) -> usize {
        self.history.len()
    }

    /// The history and then the state the run ended in (numbered one past the last update),
    /// when its loss is known: the rows of a history file and the points of a loss curve.
    pub fn records_with_end(&self) -> Vec<StepRecord> {
        let mut records = self.history.clone();
        if self.final_loss.is_finite() {
            records.push(StepRecord {
                step: self.steps() + 1,
                loss: self.final_loss,
                gradient_norm: self.final_gradient_norm,
            });
        }
        records
    }

    /// The error to report when the run failed (it diverged, or the engine failed).
    pub fn failure(&self) -> Option<Error> {
        match &self.engine_error {
            Some(message) => Some(Error::Gpu(message.clone())),
            None => self.stopped.failure(),
        }
    }

    /// Mean time per step in milliseconds (0 when no step was made).
    pub fn ms_per_step(&self) -> f64 {
        if self.history.is_empty() {
            0.0
        } else {
            self.elapsed.as_secs_f64() * 1e3 / self.history.len() as f64
        }
    }
}

/// Settings of a descent run.
#[derive(Clone, Debug, PartialEq)]
pub struct Descent {
    pub learning_rate: f64,
    pub max_steps: usize,
    pub tolerance: f64,
    pub loss: LossKind,
    /// A loss this many times the starting loss counts as divergence (the first step's loss;
    /// with mini-batches, the loss over every point before the first step).
    pub divergence_factor: f64,
    /// Steps per round; `None` lets the engine choose.
    pub round: Option<usize>,
    /// How the gradient becomes an update.
    pub update: UpdateRule,
    /// Steps per epoch: 1 at full batch, the batches of an epoch with mini-batches. A
    /// validation set is evaluated, and patience counted, once per epoch.
    pub steps_per_epoch: usize,
}

impl Default for Descent {
    fn default() -> Self {
        Descent {
            learning_rate: 0.01,
            max_steps: 100,
            tolerance: 0.0,
            loss: LossKind::Mse,
            divergence_factor: 1e6,
            round: None,
            update: UpdateRule::default(),
            steps_per_epoch: 1,
        }
    }
}

impl Descent {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::InvalidArgument(format!(
                "the learning rate must be a finite number > 0 (got {})",
                number(self.learning_rate)
            )));
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err(Error::InvalidArgument(format!(
                "the tolerance must be a finite number >= 0 (got {})",
                number(self.tolerance)
            )));
        }
        if self.steps_per_epoch == 0 {
            return Err(Error::InvalidArgument(
                "an epoch needs at least one step".into(),
            ));
        }
        if self.round == Some(0) {
            return Err(Error::InvalidArgument(
                "the round size must be at least 1".into(),
            ));
        }
        self.update.validate()
    }

    /// The flat rule's tolerance for each step: `tolerance` at full batch; none with
    /// mini-batches, where a batch's small gradient says nothing about a flat spot.
    pub(crate) fn step_tolerance(&self) -> f64 {
        if self.steps_per_epoch > 1 {
            0.0
        } else {
            self.tolerance
        }
    }

    /// The divergence limit after the steps `history`: `divergence_factor` times the
    /// starting loss: the first step's, or with mini-batches `start`, the loss over every
    /// point before the first step (one batch's loss may be far below the others'; until a
    /// step is taken, none).
    pub(crate) fn divergence_limit(&self, history: &[StepRecord], start: Option<f64>) -> f64 {
        let base = match (self.steps_per_epoch > 1, start, history.first()) {
            (true, Some(start), _) => start,
            (false, _, Some(first)) => first.loss,
            _ => return f64::INFINITY,
        };
        if base.is_finite() {
            self.divergence_factor * base.max(f64::MIN_POSITIVE)
        } else {
            f64::INFINITY
        }
    }

    /// With mini-batches, the loss over every point at the starting weights (the base of the
    /// divergence limit); `None` at full batch, where the first step's loss is that.
    fn starting_loss(&self, engine: &mut dyn Engine) -> Result<Option<f64>> {
        if self.steps_per_epoch > 1 {
            Ok(Some(engine.evaluate()?.loss(self.loss)))
        } else {
            Ok(None)
        }
    }

    /// Runs gradient descent on `engine` until the step limit, a flat spot or divergence.
    pub fn run(
        &self,
        engine: &mut dyn Engine,
        observers: &mut [&mut dyn Observer],
    ) -> Result<Outcome> {
        self.run_validated(engine, observers, None)
    }

    /// [`Descent::run`], and with `validation` the held-out loss after every epoch (the
    /// engine's rounds then end at the epochs' ends) and early stopping on it.
    pub fn run_validated(
        &self,
        engine: &mut dyn Engine,
        observers: &mut [&mut dyn Observer],
        mut validation: Option<Validation<'_>>,
    ) -> Result<Outcome> {
        self.validate()?;
        let mut validation_history = Vec::new();
        let per_epoch = self.steps_per_epoch;
        // The lowest validation loss so far: (loss, step, weights).
        let mut best: Option<(f64, usize, Network)> = None;
        let round = self
            .round
            .unwrap_or_else(|| engine.preferred_round())
            .max(1);
        let mut rule = StepRule {
            learning_rate: self.learning_rate,
            loss: self.loss,
            tolerance: self.step_tolerance(),
            divergence_limit: f64::INFINITY,
            update: self.update,
        };
        let mut history: Vec<StepRecord> = Vec::with_capacity(self.max_steps.min(1 << 20));
        let start = self.starting_loss(engine)?;
        rule.divergence_limit = self.divergence_limit(&history, start);
        let mut stopped = StopReason::MaxSteps;
        let mut elapsed = Duration::ZERO;
        let mut engine_error = None;
        while history.len() < self.max_steps {
            // The first round is one step: its loss sets the divergence limit for the rest.
            let left = self.max_steps - history.len();
            let count = if history.is_empty() {
                1
            } else if validation.is_some() {
                // Up to the end of the epoch.
                (per_epoch - history.len() % per_epoch).min(left)
            } else {
                round.min(left)
            };
            let started = Instant::now();
            let result = match engine.run_steps(history.len() + 1, count, &rule) {
                Ok(result) => result,
                Err(e) => {
                    // Keep what was learnt so far: the caller writes the last weights.
                    engine_error = Some(e.to_string());
                    stopped = StopReason::Failed {
                        step: history.len() + 1,
                    };
                    break;
                }
            };
            elapsed += started.elapsed();
            history.extend_from_slice(&result.records);
            rule.divergence_limit = self.divergence_limit(&history, start);
            for o in observers.iter_mut() {
                o.observe(&history, self.max_steps);
            }
            let epoch_ended = history.len().is_multiple_of(per_epoch);
            if let (Some(v), false, true) =
                (validation.as_mut(), result.records.is_empty(), epoch_ended)
            {
                let net = engine.network()?;
                let loss = (v.loss)(&net)?;
                validation_history.push(loss);
                let step = history.len();
                if best.as_ref().is_none_or(|(lowest, _, _)| loss < *lowest) {
                    best = Some((loss, step, net));
                }
                let since = (step - best.as_ref().map_or(step, |b| b.1)) / per_epoch;
                if let (Some(patience), Some((_, best_step, weights))) = (v.patience, &best) {
                    if since >= patience && result.stop.is_none() {
                        engine.set_network(weights)?;
                        stopped = StopReason::Early {
                            best_step: *best_step,
                        };
                        break;
                    }
                }
            }
            let interrupted = observers.iter().any(|o| o.stop_requested());
            match result.stop {
                Some(EngineStop::Flat { gradient_norm, .. }) => {
                    stopped = StopReason::Flat {
                        gradient_norm,
                        tolerance: self.tolerance,
                    };
                    break;
                }
                Some(EngineStop::Diverged { step, loss }) => {
                    // The engine went back to the weights before the last update, so that
                    // update no longer counts: the history ends with the state the kept
                    // weights are in (the outcome's final loss), not one step past it.
                    if history.last().is_some_and(|r| r.step + 1 == step) {
                        history.pop();
                    }
                    stopped = StopReason::Diverged { step, loss };
                    break;
                }
                None if interrupted && history.len() < self.max_steps => {
                    stopped = StopReason::Interrupted;
                    break;
                }
                None => {}
            }
        }
        for o in observers.iter_mut() {
            o.finish();
        }
        // A failure here (a GPU lost after the last step) must not lose the weights reached:
        // it is reported like a failure during the steps, and the weights are still returned.
        let mut final_loss = f64::NAN;
        let mut final_gradient_norm = f64::NAN;
        if engine_error.is_none() {
            match engine.evaluate() {
                Ok(evaluation) => {
                    final_loss = evaluation.loss(self.loss);
                    final_gradient_norm = norm(&evaluation.gradient(self.loss));
                }
                Err(e) => {
                    engine_error = Some(e.to_string());
                    stopped = StopReason::Failed {
                        step: history.len() + 1,
                    };
                }
            }
        }
        Ok(Outcome {
            history,
            stopped,
            final_loss,
            final_gradient_norm,
            network: engine.network()?,
            elapsed,
            engine_error,
            validation_history,
            steps_per_epoch: per_epoch,
        })
    }
}

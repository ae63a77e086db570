//! Many runs of one network shape over one data set, stepped together: a sweep of learning
//! rates and initial weights (the course's next lesson: too small a step barely moves, too
//! large a step diverges).
//!
//! A [`SweepEngine`] takes a step of every active run in one pass over the data. [`run_sweep`]
//! is [`Descent::run`] for many runs: each run has its own learning rate, divergence limit,
//! history and outcome, and stops on its own (flat, diverged) while the others go on, so each
//! run's history is the one it would have alone.

use std::time::{Duration, Instant};

use crate::descent::{
    Descent, EngineStop, Observer, Outcome, Round, StepRecord, StepRule, StopReason, Validation,
};
use crate::error::{Error, Result};
use crate::loss::{norm, Evaluation};
use crate::network::Network;

/// A compute path that owns the weights of many runs and the data, and steps every active
/// run from one pass over the data.
pub trait SweepEngine {
    /// A description of the device, such as `cpu (fused, 2 threads)`.
    fn device(&self) -> String;

    /// The number of runs.
    fn runs(&self) -> usize;

    /// Up to `count` steps numbered from `first_step` for every run whose rule is given (the
    /// others have stopped and cost nothing); one round per run, in order.
    fn run_steps(
        &mut self,
        first_step: usize,
        count: usize,
        rules: &[Option<StepRule>],
    ) -> Result<Vec<Round>>;

    /// Every run's loss and gradient at its current weights.
    fn evaluate(&mut self) -> Result<Vec<Evaluation>>;

    /// Every run's current weights.
    fn networks(&mut self) -> Result<Vec<Network>>;

    /// Makes `net` run `run`'s weights (a run stopped early goes back to its best ones).
    fn set_network(&mut self, run: usize, net: &Network) -> Result<()> {
        let _ = (run, net);
        Err(Error::Unsupported(format!(
            "{} cannot take new weights for one run",
            self.device()
        )))
    }

    /// Every run's weights before its last update (see [`crate::Engine::previous_network`]).
    fn previous_networks(&mut self) -> Result<Vec<Option<Network>>> {
        Ok(vec![None; self.runs()])
    }

    /// How many steps to run per round when the caller has no preference.
    fn preferred_round(&self) -> usize {
        10
    }

    /// How many times a step of every run reads the data (1: one pass for all runs).
    fn passes_per_step(&self) -> usize {
        1
    }
}

/// The result of a sweep: one outcome per run, in the order of the runs.
#[derive(Clone, Debug)]
pub struct SweepOutcome {
    pub runs: Vec<Outcome>,
    /// Time spent in the steps of all runs together.
    pub elapsed: Duration,
    /// Steps of the longest run: the sweep's steps.
    pub steps: usize,
    /// Passes over the data a step of every run took (see [`SweepEngine::passes_per_step`]).
    pub passes_per_step: usize,
}

impl SweepOutcome {
    /// Mean time per sweep step (every active run stepped once) in milliseconds.
    pub fn ms_per_step(&self) -> f64 {
        if self.steps == 0 {
            0.0
        } else {
            self.elapsed.as_secs_f64() * 1e3 / self.steps as f64
        }
    }
}

/// One run's state in the loop.
struct RunState {
    rule: StepRule,
    history: Vec<StepRecord>,
    /// `None` while the run goes on.
    stopped: Option<StopReason>,
    elapsed: Duration,
    /// With a validation set: its loss after every epoch, and the lowest so far (loss, step,
    /// weights).
    validation_history: Vec<f64>,
    best: Option<(f64, usize, Network)>,
}

impl RunState {
    /// Records the validation loss of `net`, the weights after the epoch that ended at the
    /// run's last step; `true` when the run has gone `patience` epochs without a lower one.
    fn validated(
        &mut self,
        loss: f64,
        net: Network,
        patience: Option<usize>,
        per_epoch: usize,
    ) -> bool {
        self.validation_history.push(loss);
        let step = self.history.len();
        if self
            .best
            .as_ref()
            .is_none_or(|(lowest, _, _)| loss < *lowest)
        {
            self.best = Some((loss, step, net));
        }
        let best_step = self.best.as_ref().map_or(step, |b| b.1);
        patience.is_some_and(|p| (step - best_step) / per_epoch >= p)
    }
}

/// Runs `descent` for every run of `engine`, run `r` with learning rate `rates[r]` (the
/// descent's own learning rate is not used). Stops each run at the step limit, a flat spot
/// or divergence, all of them at an observer's request or an engine failure.
pub fn run_sweep(
    descent: &Descent,
    rates: &[f64],
    engine: &mut dyn SweepEngine,
    observers: &mut [&mut dyn Observer],
) -> Result<SweepOutcome> {
    run_sweep_validated(descent, rates, engine, observers, None)
}

/// [`run_sweep`], and with `validation` each run's held-out loss after every epoch (the
/// rounds then end at the epochs' ends) and early stopping on it, run by run: a run that
/// stops early goes back to its best weights while the others go on.
pub fn run_sweep_validated(
    descent: &Descent,
    rates: &[f64],
    engine: &mut dyn SweepEngine,
    observers: &mut [&mut dyn Observer],
    mut validation: Option<Validation<'_>>,
) -> Result<SweepOutcome> {
    let per_epoch = descent.steps_per_epoch.max(1);
    if rates.len() != engine.runs() {
        return Err(Error::InvalidArgument(format!(
            "{} learning rates for {} runs",
            rates.len(),
            engine.runs()
        )));
    }
    for &learning_rate in rates {
        Descent {
            learning_rate,
            ..descent.clone()
        }
        .validate()?;
    }
    let round = descent
        .round
        .unwrap_or_else(|| engine.preferred_round())
        .max(1);
    let mut runs: Vec<RunState> = rates
        .iter()
        .map(|&learning_rate| RunState {
            rule: StepRule {
                learning_rate,
                loss: descent.loss,
                tolerance: descent.step_tolerance(),
                divergence_limit: f64::INFINITY,
                update: descent.update,
            },
            history: Vec::with_capacity(descent.max_steps.min(1 << 16)),
            stopped: None,
            elapsed: Duration::ZERO,
            validation_history: Vec::new(),
            best: None,
        })
        .collect();
    // With mini-batches, each run's loss over every point before the first step: the base
    // of its divergence limit.
    let starts: Vec<Option<f64>> = if per_epoch > 1 {
        engine
            .evaluate()?
            .iter()
            .map(|e| Some(e.loss(descent.loss)))
            .collect()
    } else {
        vec![None; runs.len()]
    };
    for (run, &start) in runs.iter_mut().zip(&starts) {
        run.rule.divergence_limit = descent.divergence_limit(&run.history, start);
    }
    let mut elapsed = Duration::ZERO;
    let mut engine_error = None;
    let mut steps = 0;
    // Every active run has taken the same steps: runs only ever stop.
    while steps < descent.max_steps && runs.iter().any(|r| r.stopped.is_none()) {
        // The first round is one step: its loss sets each run's divergence limit.
        let left = descent.max_steps - steps;
        let count = if steps == 0 {
            1
        } else if validation.is_some() {
            // Up to the end of the epoch.
            (per_epoch - steps % per_epoch).min(left)
        } else {
            round.min(left)
        };
        let rules: Vec<Option<StepRule>> = runs
            .iter()
            .map(|r| r.stopped.is_none().then_some(r.rule))
            .collect();
        let started = Instant::now();
        let rounds = match engine.run_steps(steps + 1, count, &rules) {
            Ok(rounds) => rounds,
            Err(e) => {
                engine_error = Some(e.to_string());
                for run in runs.iter_mut().filter(|r| r.stopped.is_none()) {
                    run.stopped = Some(StopReason::Failed { step: steps + 1 });
                }
                break;
            }
        };
        let took = started.elapsed();
        elapsed += took;
        for ((run, result), &start) in runs.iter_mut().zip(rounds).zip(&starts) {
            if run.stopped.is_some() {
                continue;
            }
            run.elapsed += took;
            run.history.extend_from_slice(&result.records);
            run.rule.divergence_limit = descent.divergence_limit(&run.history, start);
            match result.stop {
                Some(EngineStop::Flat { gradient_norm, .. }) => {
                    run.stopped = Some(StopReason::Flat {
                        gradient_norm,
                        tolerance: descent.tolerance,
                    });
                }
                Some(EngineStop::Diverged { step, loss }) => {
                    // As in `Descent::run`: the engine went back to the weights before the
                    // last update, so that update's record goes.
                    if run.history.last().is_some_and(|r| r.step + 1 == step) {
                        run.history.pop();
                    }
                    run.stopped = Some(StopReason::Diverged { step, loss });
                }
                None => {}
            }
        }
        steps += count;
        if let (Some(v), true) = (validation.as_mut(), steps.is_multiple_of(per_epoch)) {
            let nets = engine.networks()?;
            for (r, (run, net)) in runs.iter_mut().zip(nets).enumerate() {
                // The runs that took the whole epoch (a run that stopped within it has no
                // epoch's end to be validated at).
                if run.stopped.is_some() || run.history.len() != steps {
                    continue;
                }
                let loss = (v.loss)(&net)?;
                if run.validated(loss, net, v.patience, per_epoch) {
                    let (_, best_step, best) = run.best.as_ref().expect("validated once");
                    engine.set_network(r, best)?;
                    run.stopped = Some(StopReason::Early {
                        best_step: *best_step,
                    });
                }
            }
        }
        let longest = runs
            .iter()
            .max_by_key(|r| r.history.len())
            .map_or(&[][..], |r| &r.history[..]);
        for o in observers.iter_mut() {
            o.observe(longest, descent.max_steps);
        }
        if observers.iter().any(|o| o.stop_requested()) && steps < descent.max_steps {
            for run in runs.iter_mut().filter(|r| r.stopped.is_none()) {
                run.stopped = Some(StopReason::Interrupted);
            }
        }
    }
    for o in observers.iter_mut() {
        o.finish();
    }
    let finals = match engine_error {
        None => match engine.evaluate() {
            Ok(evaluations) => Some(evaluations),
            Err(e) => {
                // The runs that had stopped on their own keep their reason.
                engine_error = Some(e.to_string());
                for run in runs.iter_mut() {
                    if matches!(run.stopped, None | Some(StopReason::Interrupted)) {
                        run.stopped = Some(StopReason::Failed {
                            step: run.history.len() + 1,
                        });
                    }
                }
                None
            }
        },
        Some(_) => None,
    };
    let networks = engine.networks()?;
    let steps = runs.iter().map(|r| r.history.len()).max().unwrap_or(0);
    let runs = runs
        .into_iter()
        .zip(networks)
        .enumerate()
        .map(|(r, (run, network))| {
            let (final_loss, final_gradient_norm) =
                finals.as_ref().map_or((f64::NAN, f64::NAN), |f| {
                    (f[r].loss(descent.loss), norm(&f[r].gradient(descent.loss)))
                });
            let stopped = run.stopped.unwrap_or(StopReason::MaxSteps);
            Outcome {
                history: run.history,
                stopped,
                final_loss,
                final_gradient_norm,
                network,
                elapsed: run.elapsed,
                // Only the runs the failure stopped carry it.
                engine_error: matches!(stopped, StopReason::Failed { .. })
                    .then(|| engine_error.clone())
                    .flatten(),
                validation_history: run.validation_history,
                steps_per_epoch: descent.steps_per_epoch,
            }
        })
        .collect();
    Ok(SweepOutcome {
        runs,
        elapsed,
        steps,
        passes_per_step: engine.passes_per_step(),
    })
}

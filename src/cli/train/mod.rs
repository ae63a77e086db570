//! `downhill train`.

mod args;
mod history;
mod processes;
mod report;
mod setup;
mod sweep;

pub use args::{OptimizerArgs, TrainArgs};

use std::path::Path;
use std::process::ExitCode;

use downhill::batches::BatchPlan;
use downhill::descent::{Observer, Validation};
use downhill::device::{OpenEngine, Target};
use downhill::error::number;

use downhill::model_file::SavedRule;
use downhill::optimizer::{Optimizer, OptimizerState, Schedule};
use downhill::output::{check_distinct, check_output, Outputs};
use downhill::plot::{self, Curve};
use downhill::progress::ProgressObserver;
use downhill::verify::Verified;
use downhill::{model_file, Descent, Engine, Error, Network, Result, StepRecord, StopReason};

use super::common::{points as points_text, print_json};
use super::interrupt::Interrupts;
use processes::{among_processes, over_processes, stopping, World};
use setup::{check_reference_memory, initial_network};

/// Set only by the tests of `--verify` itself: the relative amount by which the checked
/// engine's starting weights are moved, so that verification has something to find.
const PERTURB_VARIABLE: &str = "DOWNHILL_VERIFY_PERTURB";

pub fn run(args: TrainArgs, interrupts: Interrupts) -> Result<ExitCode> {
    // Under an MPI launcher: this process's place among the others (none when alone). A
    // process that fails there ends every process (the others would wait for it for ever).
    #[cfg(feature = "mpi")]
    if let Some(world) = World::join()? {
        return match run_in(args, interrupts, Some(&world)) {
            Ok(code) => Ok(code),
            // Every process has it: the first tells it, and all end as one.
            Err(Error::OnEveryProcess { message, exit_code }) => {
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
    run_in(args, interrupts, None)
}

/// `train`, in one process or (`world`) as one of several.
fn run_in(args: TrainArgs, interrupts: Interrupts, world: Option<&World>) -> Result<ExitCode> {
    let mut args = args;
    // At full batch an epoch is a step.
    if let (Some(epochs), None) = (args.epochs, args.batch_size) {
        args.steps = epochs;
    }
    if args.patience == Some(0) {
        return Err(Error::InvalidArgument(
            "--patience 0: expected at least 1 epoch without a lower validation loss".into(),
        ));
    }
    let runs = sweep::runs(&args)?;
    #[cfg(feature = "mpi")]
    if let Some(world) = world {
        refuse_with_processes(&args, world)?;
    }
    let root = world.is_none_or(|w| w.is_root());
    among_processes(&interrupts, world);
    if runs.len() > 1 {
        return sweep::run(args, runs, interrupts, world);
    }
    let one = runs[0];
    let mut interrupts = interrupts;
    let mut descent = Descent {
        learning_rate: one.learning_rate,
        max_steps: args.steps,
        tolerance: args.tol,
        loss: args.loss,
        update: args.optimizer.rule(args.steps, 1)?,
        ..Descent::default()
    };
    descent.validate()?;
    if args.batch_size == Some(0) {
        return Err(Error::InvalidArgument(
            "--batch-size 0: a batch needs at least one point".into(),
        ));
    }
    check_outputs(&args)?;

    let net = initial_network(&args, one.init_seed.unwrap_or(args.seed))?;
    // Process r of a data-parallel run takes GPU adapter r (counted round).
    let target = Target::resolve_among(args.device, world.map_or(0, |w| w.rank()))?;
    check_reference_memory(&args, &net, &target)?;
    let (data, source, all_points) = setup::training_set(&args, &net, world)?;
    // The held-out points leave the training set before anything sees it.
    let (data, held_out) = match args.validation {
        Some(fraction) => {
            let (training, held_out) = data.split(fraction, args.seed)?;
            (training, Some(held_out))
        }
        None => (data, None),
    };
    let points = data.len();
    let resume = past_history(&args, descent.update.schedule)?;
    let offset = resume.as_ref().map_or(0, history::PastHistory::offset);
    // Plain descent keeps only its update count (for its rate schedule and its batches): from
    // the model file, or else from the history it continues.
    let resumed = match resumed_rule(&args, descent.update.optimizer)? {
        None if descent.update.optimizer == Optimizer::Gd && offset > 0 => Some(OptimizerState {
            updates: offset as u64,
            ..OptimizerState::default()
        }),
        other => other,
    };
    let updates_before = resumed.as_ref().map_or(0, |s| s.updates);
    // Mini-batches: the length in epochs becomes steps, and the schedule counts epochs. A
    // resumed run takes the batches the uninterrupted one would take next: after the updates
    // its model file counts, or else the steps of the history it continues.
    let plan = match args.batch_size {
        Some(size) => {
            let before = resumed.as_ref().map_or(offset, |s| s.updates as usize);
            let plan = BatchPlan::new(points, size, args.seed)?.after(before);
            if held_out.is_some() && before % plan.per_epoch() != 0 {
                return Err(Error::InvalidArgument(format!(
                    "--init continues a mini-batch run within an epoch (after {before} steps, \
                     {} to an epoch): --validation needs a run resumed at an epoch's end",
                    plan.per_epoch()
                )));
            }
            Some(plan)
        }
        None => None,
    };
    if let Some(plan) = &plan {
        setup::take_batches(&mut args, &mut descent, plan)?;
    }
    let args = args;
    let mut validator = match &held_out {
        Some(set) => Some(target.evaluator(&net, set)?),
        None => None,
    };
    let loss_kind = args.loss;
    let mut held_out_loss = |net: &Network| -> Result<f64> {
        let evaluator = validator.as_mut().expect("validating with a held-out set");
        Ok(evaluator.evaluate(net)?.loss(loss_kind))
    };
    let patience = args.patience;
    let validating = held_out.is_some();
    let mut progress = if root {
        ProgressObserver::new(args.steps)
    } else {
        ProgressObserver::hidden()
    };
    let open = |target: &Target| match plan {
        Some(plan) => target.batch_engine(net.clone(), &data, plan),
        None => target.engine(net.clone(), &data),
    };
    let opened = open(&target)?;
    let perturbed = perturbation_for_tests()?;
    // From here to the end of the descent a first Ctrl-C stops after the steps in flight and
    // the weights reached are written; before and after, it ends the command at once.
    interrupts.set_graceful(true);
    // An interrupt that reaches one process stops every process after the same step.
    let mut stopping = stopping(&mut interrupts, world);
    let mut observers = [&mut progress as &mut dyn Observer, &mut stopping];
    let rule = descent.update;
    let schedule = rule.schedule;
    let batched = plan.is_some();
    let mut saved = None;
    let mut run = |engine: &mut dyn Engine| -> Result<(downhill::Outcome, String)> {
        let device_name = engine.device();
        if let Some(state) = &resumed {
            engine.set_optimizer_state(state)?;
        }
        let validation = validating.then_some(Validation {
            loss: &mut held_out_loss,
            patience,
        });
        let outcome = descent.run_validated(engine, &mut observers, validation)?;
        // The rule's state goes into --out beside the weights: plain descent's is its update
        // count alone, kept where its batches or its rate depend on it.
        if rule.optimizer != Optimizer::Gd {
            saved = Some(SavedRule::new(
                rule.optimizer.name(),
                &engine.optimizer_state()?,
            ));
        } else if batched || schedule != Schedule::Constant {
            let updates = engine.optimizer_state()?.updates;
            let count = OptimizerState {
                updates,
                ..OptimizerState::default()
            };
            saved = Some(SavedRule::new(rule.optimizer.name(), &count));
        }
        Ok((outcome, device_name))
    };
    let ((outcome, device_name), verification) = match (opened, args.verify) {
        #[cfg(feature = "gpu")]
        (OpenEngine::Gpu(engine), false) => {
            // The data now lives on the device; free the host copy (on a software adapter,
            // device memory is host memory too, and 100M points would be held twice).
            drop(data);
            (run(over_processes(engine, world)?.as_mut())?, None)
        }
        (opened, false) => (run(over_processes(opened.boxed(), world)?.as_mut())?, None),
        (opened, true) => {
            // Both paths over processes: each checks the other on every process alike.
            let against = over_processes(open(&opened.checker())?.boxed(), world)?;
            let checked = match perturbed {
                Some(amount) => Box::new(Perturbed {
                    inner: opened.boxed(),
                    amount,
                }),
                None => opened.boxed(),
            };
            let checked = over_processes(checked, world)?;
            let mut verified = Verified::new(checked, against);
            (run(&mut verified)?, Some(verified.report()?))
        }
    };

    interrupts.set_graceful(false);
    let device_name = match world {
        Some(world) => format!("{device_name} x {} processes", world.size()),
        None => device_name,
    };
    // Every process ends with the same weights; the first reports and writes them.
    #[cfg(feature = "mpi")]
    if let Some(world) = world {
        world.check_same_weights(&[&outcome.network])?;
    }
    let failure = verification
        .as_ref()
        .and_then(|v| v.failure())
        .or_else(|| outcome.failure());
    if !root {
        let code = interrupts
            .exit_code()
            .filter(|_| outcome.stopped == StopReason::Interrupted);
        let code = code.or(failure.map(|e| e.exit_code() as u8));
        return Ok(code.map_or(ExitCode::SUCCESS, ExitCode::from));
    }
    // A data-parallel run reports every process's points together.
    let points = if world.is_some() { all_points } else { points };
    let title = format!(
        "Loss during training: {}, {}{}, learning rate {}{}, {}",
        outcome.network.describe(),
        points_text(points),
        plan.map_or(String::new(), |p| format!(" in batches of {}", p.size())),
        number(one.learning_rate),
        report::rule_text(&descent.update),
        device_name
    );
    write_outputs(
        &args,
        // Each step's rate goes into the history when it changes.
        (schedule != Schedule::Constant).then_some((schedule, one.learning_rate, updates_before)),
        saved.as_ref(),
        &outcome,
        resume.as_ref(),
        plan.as_ref(),
        &title,
    )?;

    let cx = report::Context {
        args: &args,
        plan: plan.as_ref(),
        learning_rate: one.learning_rate,
        rule: descent.update,
        points,
        source: source.describe(),
        device: &device_name,
        offset,
        held_out: held_out.as_ref().map(|set| set.len()),
    };
    if args.json {
        print_json(&report::json(&cx, &outcome, verification.as_ref()));
    } else {
        report::print_text(&cx, &outcome, verification.as_ref());
    }
    let wrote = report::written(&args, false);
    let interrupted = matches!(outcome.stopped, StopReason::Interrupted);
    let last = outcome.history.last().map_or(offset, |r| r.step + offset);
    let stopped = interrupts.exit_code().filter(|_| interrupted);
    let unwritten = "the weights are printed above";
    if let Some(code) = report::tell_written(&wrote, stopped.map(|c| (c, last)), unwritten) {
        return Ok(code);
    }
    match failure {
        Some(error) => {
            eprintln!("downhill: error: {error}");
            Ok(ExitCode::from(error.exit_code() as u8))
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

/// What a data-parallel run (several processes) does not take yet, refused before any work.
#[cfg(feature = "mpi")]
fn refuse_with_processes(args: &TrainArgs, world: &downhill::distributed::World) -> Result<()> {
    let refused = [
        (args.validation.is_some(), "--validation"),
        (args.batch_size.is_some(), "--batch-size"),
    ];
    match refused.iter().find(|(refused, _)| *refused) {
        Some((_, what)) => Err(Error::Unsupported(format!(
            "{what} is not taken by a run over {} processes yet: run it in one process",
            world.size()
        ))),
        None => Ok(()),
    }
}

/// The update rule's state an `--init` model carries, when it is the state of this run's rule
/// (another rule's state is left, and the rule starts afresh).
fn resumed_rule(args: &TrainArgs, optimizer: Optimizer) -> Result<Option<OptimizerState>> {
    let Some(path) = &args.init else {
        return Ok(None);
    };
    let Some(saved) = model_file::load_with_rule(path)?.1 else {
        return Ok(None);
    };
    if saved.rule == optimizer.name() {
        return Ok(Some(saved.state()));
    }
    eprintln!(
        "downhill: {} holds the state of --optimizer {}; --optimizer {} starts afresh",
        path.display(),
        saved.rule,
        optimizer.name()
    );
    Ok(None)
}

/// Every output path checked before any work: each can be written, none is another or the
/// training data.
/// The history a run continues (`--init` with an existing `--history`): appended to,
/// numbering on from its end.
fn past_history(args: &TrainArgs, schedule: Schedule) -> Result<Option<history::PastHistory>> {
    Ok(match (&args.init, &args.history) {
        (Some(_), Some(path)) if path.exists() => {
            let scheduled = schedule != Schedule::Constant;
            let batched = args.batch_size.is_some();
            Some(history::read(
                path,
                scheduled,
                args.validation.is_some(),
                batched,
            )?)
        }
        (None, Some(path)) if path.is_file() => {
            eprintln!(
                "downhill: {} exists and will be replaced (only a run with --init continues a \
                 history)",
                path.display()
            );
            None
        }
        _ => None,
    })
}

/// The model (with the rule's state, if any), the history (with each step's rate under a
/// schedule: `rates` is the schedule, the first rate and the updates made before this run)
/// and the picture: every output written in full before any is put in place.
fn write_outputs(
    args: &TrainArgs,
    rates: Option<(Schedule, f64, u64)>,
    rule_state: Option<&SavedRule>,
    outcome: &downhill::Outcome,
    resume: Option<&history::PastHistory>,
    plan: Option<&BatchPlan>,
    title: &str,
) -> Result<()> {
    let offset = resume.map_or(0, history::PastHistory::offset);
    let mut outputs = Outputs::new();
    if let Some(path) = &args.out {
        model_file::write_with_rule(&mut outputs, &outcome.network, rule_state, path)?;
    }
    if let Some(path) = &args.history {
        let validated = args.validation.is_some();
        history::write(&mut outputs, path, resume, outcome, rates, plan, validated)?;
    }
    if let Some(path) = &args.plot {
        // The curve runs to the state the run ended in, as the history file does.
        let training = outcome.records_with_end();
        let picture = if outcome.validation_history.is_empty() {
            plot::loss_curve_bytes(
                path,
                &training,
                offset,
                title,
                args.plot_log,
                plot::DEFAULT_SIZE,
            )?
        } else {
            // Each validation loss at the step whose training loss is of the same weights:
            // the first after its epoch.
            let per_epoch = outcome.steps_per_epoch;
            let held_out: Vec<StepRecord> = outcome
                .validation_history
                .iter()
                .enumerate()
                .map(|(k, &loss)| StepRecord {
                    step: (k + 1) * per_epoch + 1,
                    loss,
                    gradient_norm: f64::NAN,
                })
                .collect();
            let curves = [
                Curve {
                    label: "training".into(),
                    history: &training,
                    diverged: false,
                },
                Curve {
                    label: "validation".into(),
                    history: &held_out,
                    diverged: false,
                },
            ];
            plot::loss_curves_bytes(
                path,
                &curves,
                offset,
                title,
                args.plot_log,
                plot::DEFAULT_SIZE,
            )?
        };
        outputs.write(path, |w| {
            use std::io::Write;
            w.write_all(&picture).map_err(|e| Error::io(path, e))
        })?;
    }
    outputs.commit()
}

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

    fn optimizer_state(&mut self) -> Result<downhill::optimizer::OptimizerState> {
        self.inner.optimizer_state()
    }

    fn set_optimizer_state(&mut self, state: &downhill::optimizer::OptimizerState) -> Result<()> {
        self.inner.set_optimizer_state(state)
    }

    fn network(&mut self) -> Result<Network> {
        self.inner.network()
    }

    fn set_network(&mut self, net: &Network) -> Result<()> {
        self.inner.set_network(net)
    }

    fn previous_network(&mut self) -> Result<Option<Network>> {
        self.inner.previous_network()
    }

    fn set_network_after(&mut self, net: &Network, previous: &Network) -> Result<()> {
        self.inner.set_network_after(net, previous)
    }

    fn preferred_round(&self) -> usize {
        self.inner.preferred_round()
    }
}

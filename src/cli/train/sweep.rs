//! `train` with several runs: a list of `--lr` and/or `--init-seed` values, every (learning
//! rate, seed) pair one run, all stepped together from one pass over the data per step. A run
//! that diverges is a result of the sweep, not a failure of the command: it stops and keeps its
//! last finite weights while the others go on; the command fails only if every run diverged.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use downhill::batches::BatchPlan;
use downhill::descent::{Observer, Validation};
use downhill::device::{OpenSweep, Target};
use downhill::error::number;
use downhill::optimizer::UpdateRule;
use downhill::output::{check_distinct, check_output, Outputs};
use downhill::plot::{self, Curve};
use downhill::progress::ProgressObserver;
use downhill::sweep::{run_sweep_validated, SweepEngine, SweepOutcome};
use downhill::verify::{self, Report, VerifiedSweep};
use downhill::{model_file, Descent, Error, Network, Outcome, Result, StepRecord, StopReason};
use serde_json::json;

use super::args::TrainArgs;
use super::processes::{over_processes, stopping, sweep_over_processes, World};
use super::report;
use super::setup::{check_reference_memory, initial_network, take_batches, training_set};
use crate::cli::common::{points as points_text, print_json, thousands};
use crate::cli::interrupt::Interrupts;

/// The most runs one sweep takes.
pub const MAX_RUNS: usize = 4096;

/// One run of a sweep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunSpec {
    pub learning_rate: f64,
    /// The seed of the run's initial weights; `None` when they come from `--init`.
    pub init_seed: Option<u64>,
}

impl RunSpec {
    /// The run's name in file names: `lr0.1-seed6` (`lr0.1` from `--init`'s weights).
    fn name(&self) -> String {
        match self.init_seed {
            Some(seed) => format!("lr{}-seed{seed}", number(self.learning_rate)),
            None => format!("lr{}", number(self.learning_rate)),
        }
    }

    /// The seed in the report: `--init` for weights from a file.
    fn seed_text(&self) -> String {
        self.init_seed.map_or("--init".into(), |s| s.to_string())
    }
}

/// Every (learning rate, initial-weight seed) pair the options ask for, rates first.
pub fn runs(args: &TrainArgs) -> Result<Vec<RunSpec>> {
    // With --init every run starts from the file's weights: no seed is used.
    let seeds: Vec<Option<u64>> = if args.init.is_some() {
        vec![None]
    } else if args.init_seed.is_empty() {
        vec![Some(args.seed)]
    } else {
        args.init_seed.iter().copied().map(Some).collect()
    };
    if args.lr.is_empty() {
        return Err(Error::InvalidArgument(
            "--lr needs at least one value".into(),
        ));
    }
    let count = args.lr.len() * seeds.len();
    if count > MAX_RUNS {
        return Err(Error::InvalidArgument(format!(
            "{} learning rates x {} seeds is {count} runs; a sweep takes at most {MAX_RUNS}",
            args.lr.len(),
            seeds.len()
        )));
    }
    let runs: Vec<RunSpec> = args
        .lr
        .iter()
        .flat_map(|&learning_rate| {
            seeds.iter().map(move |&init_seed| RunSpec {
                learning_rate,
                init_seed,
            })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for run in &runs {
        if !seen.insert(run.name()) {
            return Err(Error::InvalidArgument(format!(
                "the run {} (--lr and --init-seed) is listed twice",
                run.name()
            )));
        }
    }
    Ok(runs)
}

/// A sweep's model files: `DIR/lr0.1-seed6.json`.
fn model_path(dir: &Path, run: &RunSpec) -> PathBuf {
    dir.join(format!("{}.json", run.name()))
}

/// The sweep of `runs`, in one process or (`world`) as one of several: each then evaluates
/// every run on its share of the points, and the first writes and reports.
pub fn run(
    args: TrainArgs,
    runs: Vec<RunSpec>,
    interrupts: Interrupts,
    world: Option<&World>,
) -> Result<ExitCode> {
    let mut args = args;
    let mut interrupts = interrupts;
    let mut descent = Descent {
        learning_rate: runs[0].learning_rate,
        max_steps: args.steps,
        tolerance: args.tol,
        loss: args.loss,
        update: args.optimizer.rule(args.steps, 1)?,
        ..Descent::default()
    };
    for run in &runs {
        Descent {
            learning_rate: run.learning_rate,
            ..descent.clone()
        }
        .validate()?;
    }
    check_outputs(&args, &runs)?;
    let nets = runs
        .iter()
        .map(|run| initial_network(&args, run.init_seed.unwrap_or(args.seed)))
        .collect::<Result<Vec<Network>>>()?;
    let root = world.is_none_or(|w| w.is_root());
    // Process r of a data-parallel run takes GPU adapter r (counted round).
    let target = Target::resolve_among(args.device, world.map_or(0, |w| w.rank()))?;
    check_reference_memory(&args, &nets[0], &target)?;
    let (data, source, all_points) = training_set(&args, &nets[0], world)?;
    // The held-out points leave the training set before anything sees it; every run is
    // validated on the same points.
    let (data, held_out) = match args.validation {
        Some(fraction) => {
            let (training, held_out) = data.split(fraction, args.seed)?;
            (training, Some(held_out))
        }
        None => (data, None),
    };
    let points = data.len();
    let mut validator = match &held_out {
        Some(set) => Some(target.evaluator(&nets[0], set)?),
        None => None,
    };
    let loss_kind = args.loss;
    let mut held_out_loss = |net: &Network| -> Result<f64> {
        let evaluator = validator.as_mut().expect("validating with a held-out set");
        Ok(evaluator.evaluate(net)?.loss(loss_kind))
    };
    let (validating, patience) = (held_out.is_some(), args.patience);
    // Mini-batches: every run takes the same batches; the length in epochs becomes steps.
    let plan = match args.batch_size {
        Some(size) => Some(BatchPlan::new(points, size, args.seed)?),
        None => None,
    };
    if let Some(plan) = &plan {
        take_batches(&mut args, &mut descent, plan)?;
    }
    let args = args;
    let opened = target.batch_sweep_engine(nets.clone(), &data, plan)?;
    let mut progress = if root {
        ProgressObserver::new(args.steps)
    } else {
        ProgressObserver::hidden()
    };
    let rates: Vec<f64> = runs.iter().map(|r| r.learning_rate).collect();
    let mut run = |engine: &mut dyn SweepEngine| {
        interrupts.set_graceful(true);
        // An interrupt that reaches one process stops every process after the same step.
        let mut stopping = stopping(&mut interrupts, world);
        let mut observers = [&mut progress as &mut dyn Observer, &mut stopping];
        let validation = validating.then_some(Validation {
            loss: &mut held_out_loss,
            patience,
        });
        let outcome = run_sweep_validated(&descent, &rates, engine, &mut observers, validation);
        interrupts.set_graceful(false);
        outcome.map(|o| (o, engine.device()))
    };

    let (outcome, device, verification) = match (opened, args.verify) {
        (opened, true) => {
            // Every run checked against the same run on the checking path.
            let checker = opened.checker();
            let against = nets
                .into_iter()
                .map(|net| {
                    let opened = match plan {
                        Some(plan) => checker.batch_engine(net, &data, plan)?,
                        None => checker.engine(net, &data)?,
                    };
                    over_processes(opened.boxed(), world)
                })
                .collect::<Result<Vec<_>>>()?;
            let checked = sweep_over_processes(opened.boxed(), world)?;
            let mut verified = VerifiedSweep::new(checked, against)?;
            let (outcome, device) = run(&mut verified)?;
            (outcome, device, Some(verified.reports()?))
        }
        #[cfg(feature = "gpu")]
        (OpenSweep::Gpu(sweep), false) => {
            // The data now lives on the device: free the host copy (as a single run does).
            drop(data);
            let (outcome, device) = run(sweep_over_processes(sweep, world)?.as_mut())?;
            (outcome, device, None)
        }
        (opened, false) => {
            let mut engine = sweep_over_processes(opened.boxed(), world)?;
            let (outcome, device) = run(engine.as_mut())?;
            (outcome, device, None)
        }
    };
    // Every process ends with the same weights; the first reports and writes them.
    #[cfg(feature = "mpi")]
    if let Some(world) = world {
        let nets: Vec<&Network> = outcome.runs.iter().map(|o| &o.network).collect();
        world.check_same_weights(&nets)?;
    }
    let interrupted = outcome
        .runs
        .iter()
        .any(|o| matches!(o.stopped, StopReason::Interrupted));
    if !root {
        let code = interrupts.exit_code().filter(|_| interrupted);
        return Ok(code.map_or(ExitCode::SUCCESS, ExitCode::from));
    }
    let (points, device) = match world {
        Some(world) => (all_points, format!("{device} x {} processes", world.size())),
        None => (points, device),
    };

    let network = outcome.runs[0].network.describe();
    let title = format!(
        "Loss during training: {network}, {}{}, {} runs, {device}",
        points_text(points),
        plan.map_or(String::new(), |p| format!(" in batches of {}", p.size())),
        runs.len()
    );
    write_outputs(&args, &runs, &outcome, &title)?;
    let cx = Context {
        args: &args,
        held_out: held_out.as_ref().map(|set| set.len()),
        plan: plan.as_ref(),
        rule: descent.update,
        runs: &runs,
        points,
        source: source.describe(),
        device: &device,
    };
    if args.json {
        print_json(&json_report(&cx, &outcome, verification.as_deref()));
    } else {
        print_text(&cx, &outcome, verification.as_deref());
    }
    let wrote = report::written(&args, true);
    let stopped = interrupts.exit_code().filter(|_| interrupted);
    let unwritten = "the final losses are printed above";
    if let Some(code) = report::tell_written(&wrote, stopped.map(|c| (c, outcome.steps)), unwritten)
    {
        return Ok(code);
    }
    let failed = outcome
        .runs
        .iter()
        .find_map(|o| o.engine_error.as_ref().and(o.failure()));
    let unverified = verification
        .iter()
        .flatten()
        .zip(&runs)
        .find_map(|(report, run)| report.failure().map(|e| (e, run)));
    if let Some((error, run)) = unverified {
        eprintln!("downhill: error: run {}: {error}", run.name());
        return Ok(ExitCode::from(error.exit_code() as u8));
    }
    if let Some(error) = failed {
        eprintln!("downhill: error: {error}");
        return Ok(ExitCode::from(error.exit_code() as u8));
    }
    let diverged = outcome
        .runs
        .iter()
        .filter(|o| matches!(o.stopped, StopReason::Diverged { .. }))
        .count();
    if diverged == outcome.runs.len() {
        eprintln!("downhill: error: every run diverged; try smaller learning rates (--lr)");
        return Ok(ExitCode::from(1));
    }
    if diverged > 0 {
        eprintln!(
            "downhill: {diverged} of {} runs diverged (kept at their last finite weights)",
            outcome.runs.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Every output checked before any work: the model directory (existing, or to be made in a
/// directory that exists), the history and the picture.
fn check_outputs(args: &TrainArgs, runs: &[RunSpec]) -> Result<()> {
    if args.init.is_some() && args.history.as_ref().is_some_and(|p| p.is_file()) {
        return Err(Error::InvalidArgument(
            "a sweep's --history is written anew; it does not continue an existing one: give \
             another --history"
                .into(),
        ));
    }
    if let Some(path) = &args.plot {
        plot::ImageKind::of(path)?;
    }
    let mut outputs: Vec<(&str, &Path)> = Vec::new();
    if let Some(dir) = &args.out {
        if dir.is_dir() {
            for run in runs {
                check_output(&model_path(dir, run))?;
            }
        } else if dir.exists() {
            return Err(Error::io(
                dir,
                std::io::Error::other(
                    "is not a directory: with several runs, --out names a directory for one \
                     model file per run",
                ),
            ));
        } else if dir
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            return Err(Error::InvalidArgument(format!(
                "--out {}: with several runs, --out names a directory for one model file per \
                 run (for example --out runs/)",
                dir.display()
            )));
        } else {
            // It will be made (`runs/` and `runs` alike): its parent must take a new entry.
            let text = dir.as_os_str().to_string_lossy();
            let bare = Path::new(text.trim_end_matches('/'));
            check_output(if bare.as_os_str().is_empty() {
                dir
            } else {
                bare
            })?;
        }
        outputs.push(("--out", dir));
    }
    for (flag, path) in [("--history", &args.history), ("--plot", &args.plot)] {
        if let Some(path) = path {
            check_output(path)?;
            outputs.push((flag, path));
        }
    }
    let inputs: Vec<(&str, &Path)> = args
        .data
        .as_deref()
        .map(|p| ("--data", p))
        .into_iter()
        .collect();
    check_distinct(&outputs, &inputs)?;
    if let Some(path) = args.history.as_ref().filter(|p| p.is_file()) {
        eprintln!("downhill: {} exists and will be replaced", path.display());
    }
    Ok(())
}

/// The models, the history and the picture, all written before any is put in place.
fn write_outputs(
    args: &TrainArgs,
    runs: &[RunSpec],
    outcome: &SweepOutcome,
    title: &str,
) -> Result<()> {
    let mut outputs = Outputs::new();
    if let Some(path) = &args.history {
        let batched = args.batch_size.is_some();
        outputs.write(path, |w| write_history(w, path, runs, outcome, batched))?;
    }
    if let Some(path) = &args.plot {
        let several_seeds = runs.iter().any(|r| r.init_seed != runs[0].init_seed);
        // Each curve runs to the state its run ended in, as its rows of the history do.
        let records: Vec<Vec<StepRecord>> =
            outcome.runs.iter().map(Outcome::records_with_end).collect();
        let curves: Vec<Curve> = runs
            .iter()
            .zip(&outcome.runs)
            .zip(&records)
            .map(|((run, result), records)| Curve {
                label: if several_seeds {
                    format!("lr {}, seed {}", number(run.learning_rate), run.seed_text())
                } else {
                    format!("lr {}", number(run.learning_rate))
                },
                history: records,
                diverged: matches!(result.stopped, StopReason::Diverged { .. }),
            })
            .collect();
        let picture =
            plot::loss_curves_bytes(path, &curves, 0, title, args.plot_log, plot::DEFAULT_SIZE)?;
        outputs.write(path, |w| {
            w.write_all(&picture).map_err(|e| Error::io(path, e))
        })?;
    }
    // The directory last, once everything else was made: a failure before leaves none.
    let made = args.out.as_ref().filter(|dir| !dir.exists());
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for (run, result) in runs.iter().zip(&outcome.runs) {
            model_file::write(&mut outputs, &result.network, &model_path(dir, run))?;
        }
    }
    let committed = outputs.commit();
    if let (Err(_), Some(dir)) = (&committed, made) {
        // Only if nothing got in: remove_dir refuses a directory that is not empty.
        let _ = std::fs::remove_dir(dir);
    }
    committed
}

/// The header of a sweep's history file.
pub const HEADER: &str = "run,learning_rate,init_seed,step,loss,gradient_norm";
/// The same with mini-batches: each row's epoch after its step.
const BATCHED_HEADER: &str = "run,learning_rate,init_seed,step,epoch,loss,gradient_norm";

/// Each run's rows as in a single run's history (the state before each step, then the final
/// state), run by run; with `batched`, each row's epoch (from 1) after its step.
fn write_history(
    w: &mut dyn Write,
    path: &Path,
    runs: &[RunSpec],
    outcome: &SweepOutcome,
    batched: bool,
) -> Result<()> {
    let io = |e| Error::io(path, e);
    writeln!(w, "{}", if batched { BATCHED_HEADER } else { HEADER }).map_err(io)?;
    for (r, (run, result)) in runs.iter().zip(&outcome.runs).enumerate() {
        let lr = number(run.learning_rate);
        // Empty when the run started from --init's weights.
        let seed = run.init_seed.map_or(String::new(), |s| s.to_string());
        let (updates, per_epoch) = (result.steps().max(1), result.steps_per_epoch.max(1));
        for s in &result.records_with_end() {
            let epoch = if batched {
                // The end row's state comes after the last update, in its epoch.
                format!(",{}", (s.step.min(updates) - 1) / per_epoch + 1)
            } else {
                String::new()
            };
            writeln!(
                w,
                "{r},{lr},{seed},{}{epoch},{:e},{:e}",
                s.step, s.loss, s.gradient_norm
            )
            .map_err(io)?;
        }
    }
    Ok(())
}

/// Everything the report tells besides the outcomes.
struct Context<'a> {
    args: &'a TrainArgs,
    /// The mini-batches every run took, with `--batch-size`.
    plan: Option<&'a BatchPlan>,
    /// Points held out for validation (`--validation`).
    held_out: Option<usize>,
    /// The update rule every run took.
    rule: UpdateRule,
    runs: &'a [RunSpec],
    points: usize,
    source: String,
    device: &'a str,
}

/// The runs in order of their final loss (a failed run, whose final loss is unknown, last).
fn by_final_loss(outcome: &SweepOutcome) -> Vec<usize> {
    let mut order: Vec<usize> = (0..outcome.runs.len()).collect();
    let key = |o: &Outcome| {
        if o.final_loss.is_finite() {
            o.final_loss
        } else {
            f64::INFINITY
        }
    };
    order.sort_by(|&a, &b| key(&outcome.runs[a]).total_cmp(&key(&outcome.runs[b])));
    order
}

fn print_text(cx: &Context, outcome: &SweepOutcome, verification: Option<&[Report]>) {
    let args = cx.args;
    println!(
        "training {} runs of {} on {} ({})",
        cx.runs.len(),
        outcome.runs[0].network.describe(),
        points_text(cx.points),
        cx.source
    );
    let passes = match outcome.passes_per_step {
        1 => "one pass over the data per step for every run".to_string(),
        n => format!("{n} passes over the data per step for all runs"),
    };
    println!(
        "device {}; loss {}{}; {}; {passes}",
        cx.device,
        args.loss,
        report::rule_text(&cx.rule),
        report::length_text(args.steps, cx.plan)
    );
    println!();
    let loss_column = format!("final {}", args.loss.name());
    println!(
        "{:>5}  {:>13}  {:>9}  {:>7}  {:>14}  {:>12}  stopped",
        "run", "learning rate", "init seed", "steps", loss_column, "|gradient|"
    );
    for r in by_final_loss(outcome) {
        let (run, result) = (&cx.runs[r], &outcome.runs[r]);
        println!(
            "{:>5}  {:>13}  {:>9}  {:>7}  {:>14.6e}  {:>12.4e}  {}",
            r,
            number(run.learning_rate),
            run.seed_text(),
            result.steps(),
            result.final_loss,
            result.final_gradient_norm,
            result.stopped
        );
    }
    if let Some(held) = cx.held_out {
        println!();
        println!(
            "validation on {} held out: each run's lowest {} and the epoch after which it fell",
            points_text(held),
            args.loss
        );
        for r in by_final_loss(outcome) {
            if let Some((epoch, loss)) = report::best_validation(&outcome.runs[r]) {
                println!("{r:>5}  {loss:>14.6e}  after epoch {epoch}");
            }
        }
    }
    println!();
    let ms = outcome.ms_per_step();
    if ms > 0.0 {
        let per_step = cx.plan.map_or(cx.points, |plan| plan.size());
        println!(
            "time per sweep step {ms:.3} ms ({} runs x {} points: {:.0} million run-points/s)",
            cx.runs.len(),
            thousands(per_step),
            (cx.runs.len() * per_step) as f64 / ms / 1e3
        );
    }
    if let Some(reports) = verification {
        let worst = |f: fn(&Report) -> f64| reports.iter().map(f).fold(0.0, f64::max);
        let failed: Vec<String> = reports
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.passed())
            .map(|(i, _)| i.to_string())
            .collect();
        println!(
            "verify: {} runs, {} steps compared; largest relative deviation {:.3e} (loss), \
             {:.3e} (gradient norm), {:.3e} (weights); tolerance {:e} (gradient norm {:e}): {}",
            reports.len(),
            reports.iter().map(|r| r.compared).sum::<usize>(),
            worst(|r| r.loss),
            worst(|r| r.gradient_norm),
            worst(|r| r.weights),
            verify::TOLERANCE,
            verify::NORM_TOLERANCE,
            if failed.is_empty() {
                "passed".to_string()
            } else {
                format!("FAILED (runs {})", failed.join(", "))
            }
        );
    }
}

fn json_report(
    cx: &Context,
    outcome: &SweepOutcome,
    verification: Option<&[Report]>,
) -> serde_json::Value {
    let args = cx.args;
    let runs: Vec<serde_json::Value> = cx
        .runs
        .iter()
        .zip(&outcome.runs)
        .enumerate()
        .map(|(r, (run, result))| {
            let mut report = json!({
                "steps": result.steps(),
                "final_loss": result.final_loss,
                "final_gradient_norm": result.final_gradient_norm,
                "loss": args.loss.name(),
                "loss_history": result.history.iter().map(|r| r.loss).collect::<Vec<_>>(),
                "gradient_norm_history": result.history.iter().map(|r| r.gradient_norm).collect::<Vec<_>>(),
                "stopped": result.stopped.name(),
                "device": cx.device,
                "ms_per_step": outcome.ms_per_step(),
                "points": cx.points,
                "learning_rate": run.learning_rate,
                "optimizer": report::rule_json(&cx.rule),
                "batch_size": cx.plan.map_or(cx.points, |plan| plan.size()),
                "steps_per_epoch": result.steps_per_epoch,
                "epoch_loss_history": match cx.plan {
                    Some(plan) => plan.epoch_losses(&result.history),
                    None => result.history.iter().map(|r| r.loss).collect(),
                },
                "validation_loss_history": result.validation_history,
                "best_epoch": report::best_validation(result).map(|(epoch, _)| epoch),
                "init_seed": run.init_seed,
                "network": result.network.describe(),
                "model": model_file::to_json_value(&result.network),
                "model_file": args.out.as_ref().map(|dir| model_path(dir, run)),
            });
            if let Some(v) = verification.map(|all| &all[r]) {
                report["verify"] = report::verify_json(v);
            }
            report
        })
        .collect();
    json!({
        "runs": runs,
        "ms_per_step": outcome.ms_per_step(),
        "points": cx.points,
        "device": cx.device,
        "network": outcome.runs[0].network.describe(),
    })
}

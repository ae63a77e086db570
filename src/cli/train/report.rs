//! What `train` prints: the text report (a table of the loss before each step that ends with
//! the final state, then the summary and the weights) or one JSON object.

use downhill::batches::BatchPlan;
use downhill::error::{number, weight_text};
use downhill::optimizer::UpdateRule;
use downhill::verify::{self, Report};
use downhill::{model_file, Outcome};
use serde_json::json;
use std::process::ExitCode;

use super::args::TrainArgs;
use crate::cli::common::points as points_text;

/// Everything the report tells, besides the outcome.
pub struct Context<'a> {
    pub args: &'a TrainArgs,
    /// The mini-batches, with `--batch-size`.
    pub plan: Option<&'a BatchPlan>,
    pub learning_rate: f64,
    /// The update rule the run took.
    pub rule: UpdateRule,
    pub points: usize,
    /// Where the data came from.
    pub source: String,
    pub device: &'a str,
    /// Steps made before this run (a resumed history): the console numbers on from them.
    pub offset: usize,
    /// Points held out for validation (`--validation`).
    pub held_out: Option<usize>,
}

/// The update rule in words, after the learning rate: nothing for the lesson's plain descent.
pub fn rule_text(rule: &UpdateRule) -> String {
    if *rule == UpdateRule::default() {
        String::new()
    } else {
        format!(", {rule}")
    }
}

/// The length of a run of `steps` steps in words, and with mini-batches the epochs they
/// make.
pub fn length_text(steps: usize, plan: Option<&BatchPlan>) -> String {
    match plan {
        Some(plan) => format!(
            "batches of {} ({} per epoch), up to {steps} steps ({} epochs)",
            plan.size(),
            plan.per_epoch(),
            number(steps as f64 / plan.per_epoch() as f64)
        ),
        None => format!("up to {steps} steps"),
    }
}

/// Whole epochs taken before this run (a resumed run's; at full batch, its steps).
fn epochs_before(cx: &Context) -> usize {
    match cx.plan {
        Some(plan) => plan.before() / plan.per_epoch(),
        None => cx.offset,
    }
}

/// Each whole epoch's mean batch loss (at full batch, each step's loss).
fn epoch_losses(cx: &Context, outcome: &Outcome) -> Vec<f64> {
    match cx.plan {
        Some(plan) => plan.epoch_losses(&outcome.history),
        None => outcome.history.iter().map(|r| r.loss).collect(),
    }
}

/// The epoch after which the validation loss was lowest (the first such), and that loss.
pub fn best_validation(outcome: &Outcome) -> Option<(usize, f64)> {
    outcome.validation_history.iter().enumerate().fold(
        None,
        |best: Option<(usize, f64)>, (k, &loss)| match best {
            Some((_, lowest)) if lowest <= loss => best,
            _ => Some((k + 1, loss)),
        },
    )
}

/// The update rule in JSON: its name (`gd`, `momentum`, `nesterov`, `adam`) and in words with
/// its constants, weight decay and rate schedule.
pub fn rule_json(rule: &UpdateRule) -> serde_json::Value {
    json!({"name": rule.optimizer.name(), "rule": rule.to_string()})
}

/// What `train` wrote, in words: one run's outputs, or (`several`) a sweep's.
pub fn written(args: &TrainArgs, several: bool) -> Vec<String> {
    let (model, history, curve) = if several {
        ("one model per run", "the loss histories", "the loss curves")
    } else {
        ("the model", "the loss history", "the loss curve")
    };
    [
        (&args.out, model),
        (&args.history, history),
        (&args.plot, curve),
    ]
    .into_iter()
    .filter_map(|(path, what)| {
        path.as_ref()
            .map(|path| format!("{what} to {}", path.display()))
    })
    .collect()
}

/// The stopping rule in words.
fn tolerance_text(tol: f64) -> String {
    if tol > 0.0 {
        format!("stop when |gradient| < {}", number(tol))
    } else {
        "no flat-stop rule (--tol 0)".into()
    }
}

/// Prints the text report on stdout.
pub fn print_text(cx: &Context, outcome: &Outcome, verification: Option<&Report>) {
    let args = cx.args;
    let net = &outcome.network;
    let held_out = cx.held_out.map_or(String::new(), |n| {
        format!(", {} held out for validation", points_text(n))
    });
    println!(
        "training {} on {} ({}{held_out})",
        net.describe(),
        points_text(cx.points),
        cx.source
    );
    println!(
        "device {}; loss {}; learning rate {}{}; {}; {}",
        cx.device,
        args.loss,
        number(cx.learning_rate),
        rule_text(&cx.rule),
        length_text(args.steps, cx.plan),
        match cx.plan {
            Some(_) =>
                "no flat-stop rule with --batch-size (a batch's gradient is not the loss's)".into(),
            None => tolerance_text(args.tol),
        }
    );
    println!();
    let loss_column = match cx.plan {
        Some(_) => format!("batch {} before", args.loss.name()),
        None => format!("{} before step", args.loss.name()),
    };
    println!("{:>8}  {:>16}  {:>12}", "step", loss_column, "|gradient|");
    let history = &outcome.history;
    let every = history.len().div_ceil(10).max(1);
    for (i, r) in history.iter().enumerate() {
        if i % every == 0 || i + 1 == history.len() {
            println!(
                "{:>8}  {:>16.6e}  {:>12.4e}",
                r.step + cx.offset,
                r.loss,
                r.gradient_norm
            );
        }
    }
    println!(
        "{:>8}  {:>16.6e}  {:>12.4e}",
        "final", outcome.final_loss, outcome.final_gradient_norm
    );
    println!();
    println!(
        "final {} {:.6e} after {} step{} ({})",
        args.loss,
        outcome.final_loss,
        outcome.steps(),
        if outcome.steps() == 1 { "" } else { "s" },
        outcome.stopped
    );
    if let (Some(_), [first, .., last]) = (cx.plan, &epoch_losses(cx, outcome)[..]) {
        println!(
            "mean batch {} per epoch: {first:.6e} in the first, {last:.6e} in the last",
            args.loss
        );
    }
    if let Some((epoch, loss)) = best_validation(outcome) {
        let after = match cx.plan {
            Some(_) => format!("epoch {}", epochs_before(cx) + epoch),
            None => format!("step {}", epoch + cx.offset),
        };
        println!(
            "validation {}: lowest {loss:.6e} after {after}, last {:.6e}",
            args.loss,
            outcome
                .validation_history
                .last()
                .copied()
                .unwrap_or(f64::NAN)
        );
    }
    let ms = outcome.ms_per_step();
    if ms > 0.0 {
        println!(
            "time per step {ms:.3} ms ({:.0} million points/s)",
            cx.plan.map_or(cx.points, |plan| plan.size()) as f64 / ms / 1e3
        );
    }
    println!();
    println!("weights:");
    for (name, value) in net.param_names().iter().zip(net.params()) {
        println!("  {name:<14} {:>12}", weight_text(value));
    }
    if let Some(v) = verification {
        println!(
            "verify: {} steps compared; largest relative deviation {:.3e} (loss), {:.3e} \
             (gradient norm), {:.3e} (weights); tolerance {:e} (gradient norm {:e}): {}",
            v.compared,
            v.loss,
            v.gradient_norm,
            v.weights,
            verify::TOLERANCE,
            verify::NORM_TOLERANCE,
            match (&v.mismatch, v.passed()) {
                (Some(why), _) => format!("FAILED ({why})"),
                (None, true) => "passed".into(),
                (None, false) => "FAILED".into(),
            }
        );
    }
}

/// The last lines on stderr: after an interrupt (`code`, the exit code a shell expects) the
/// step the run stopped after and what was written (or `unwritten`, where the result went
/// instead), and the code to exit with; otherwise what was written, and `None`.
pub fn tell_written(
    wrote: &[String],
    interrupted: Option<(u8, usize)>,
    unwritten: &str,
) -> Option<ExitCode> {
    if let Some((code, last)) = interrupted {
        eprintln!(
            "downhill: interrupted after step {last}; {}",
            if wrote.is_empty() {
                format!("no --out or --history was given: {unwritten}")
            } else {
                format!("wrote {}", wrote.join(" and "))
            }
        );
        return Some(ExitCode::from(code));
    }
    if !wrote.is_empty() {
        eprintln!("downhill: wrote {}", wrote.join(", "));
    }
    None
}

/// The `--json` report.
pub fn json(cx: &Context, outcome: &Outcome, verification: Option<&Report>) -> serde_json::Value {
    let args = cx.args;
    let mut report = json!({
        "steps": outcome.steps(),
        "final_loss": outcome.final_loss,
        "final_gradient_norm": outcome.final_gradient_norm,
        "loss": args.loss.name(),
        "loss_history": outcome.history.iter().map(|r| r.loss).collect::<Vec<_>>(),
        "gradient_norm_history": outcome.history.iter().map(|r| r.gradient_norm).collect::<Vec<_>>(),
        "stopped": outcome.stopped.name(),
        "device": cx.device,
        "ms_per_step": outcome.ms_per_step(),
        "points": cx.points,
        "learning_rate": cx.learning_rate,
        "optimizer": rule_json(&cx.rule),
        "validation_loss_history": outcome.validation_history,
        "best_epoch": best_validation(outcome).map(|(epoch, _)| epochs_before(cx) + epoch),
        "batch_size": cx.plan.map_or(cx.points, |plan| plan.size()),
        "steps_per_epoch": outcome.steps_per_epoch,
        "epoch_loss_history": epoch_losses(cx, outcome),
        "network": outcome.network.describe(),
        "model": model_file::to_json_value(&outcome.network),
    });
    if let Some(v) = verification {
        report["verify"] = verify_json(v);
    }
    report
}

/// A verification in JSON (a run's `verify` field).
pub fn verify_json(v: &Report) -> serde_json::Value {
    json!({
        "steps_compared": v.compared,
        "max_loss_deviation": v.loss,
        "max_gradient_norm_deviation": v.gradient_norm,
        "max_weight_deviation": v.weights,
        "mismatch": v.mismatch,
        "tolerance": verify::TOLERANCE,
        "passed": v.passed(),
    })
}

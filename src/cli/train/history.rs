//! The `--history` file: CSV `step,loss,gradient_norm`, one row per step with the loss and the
//! gradient norm before that step's update, and a last row with the state the run ended in
//! (numbered one past the last update). With mini-batches an `epoch` column (1-based) follows
//! the step, and the loss is the batch's. With a rate schedule, a column holds each update's
//! learning rate (empty in the last row, which made no update); with a validation set, a last
//! column holds the held-out loss at the first row of each epoch's weights. A resumed run
//! (`--init`) starts from that state, so its first row takes the place of the last row of the
//! file it continues.

use std::io::Write;
use std::path::Path;

use downhill::batches::BatchPlan;
use downhill::optimizer::Schedule;
use downhill::output::Outputs;
use downhill::{Error, Outcome, Result, StopReason};

/// The header every history file starts with.
pub const HEADER: &str = "step,loss,gradient_norm";
/// The header for a run with or without a rate schedule (a `learning_rate` column), a
/// validation set (a `validation_loss` column) and mini-batches (an `epoch` column).
fn header(scheduled: bool, validated: bool, batched: bool) -> String {
    let mut header = if batched {
        "step,epoch,loss,gradient_norm".to_string()
    } else {
        HEADER.to_string()
    };
    if scheduled {
        header += ",learning_rate";
    }
    if validated {
        header += ",validation_loss";
    }
    header
}

/// The validation loss of the weights a history row's loss is of (row `step`: the weights
/// after step `step - 1`), when they are an epoch's last.
fn validation_loss_of(outcome: &Outcome, step: usize) -> Option<f64> {
    let held = &outcome.validation_history;
    let per_epoch = outcome.steps_per_epoch.max(1);
    let mut after = step.checked_sub(1)?;
    if step == outcome.steps() + 1 {
        // The end row: the weights the run ended with (the best ones after an early stop).
        if let StopReason::Early { best_step } = outcome.stopped {
            after = best_step;
        }
    }
    if after % per_epoch != 0 {
        return None;
    }
    held.get((after / per_epoch).checked_sub(1)?).copied()
}

/// An existing history file, read to be continued.
pub struct PastHistory {
    /// The file's rows after the header, the last one (the state the run continues from) left
    /// out.
    rows: String,
    /// The last row's validation loss (the held-out loss of the weights the run continues
    /// from), as written there; empty when it has none.
    last_validation: String,
    /// The step number of the last row (1 when it has only that row, 0 when it has none).
    pub last_step: usize,
}

impl PastHistory {
    /// The step number a continuing run's first row takes.
    pub fn offset(&self) -> usize {
        self.last_step.saturating_sub(1)
    }
}

/// Reads an existing history to be continued by a run with or without a rate schedule and a
/// validation set: its header must be that run's.
pub fn read(path: &Path, scheduled: bool, validated: bool, batched: bool) -> Result<PastHistory> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut lines = text.lines();
    let want = header(scheduled, validated, batched);
    if lines.next().map(|l| l.trim_start_matches('\u{feff}')) != Some(want.as_str()) {
        return Err(Error::BadData {
            path: path.to_path_buf(),
            message: format!(
                "not a downhill loss history of a run like this one (expected the header \
                 {want}); give another --history to start a new one"
            ),
        });
    }
    let mut rows = String::new();
    let mut last_row = "";
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
                    message: format!(
                        "expected a step number above {last_step}, found '{}'",
                        downhill::error::shown(line)
                    ),
                })
            }
        }
        if !last_row.is_empty() {
            rows.push_str(last_row);
            rows.push('\n');
        }
        last_row = line;
    }
    let last_validation = if validated {
        last_row.rsplit(',').next().unwrap_or_default().to_string()
    } else {
        String::new()
    };
    Ok(PastHistory {
        rows,
        last_step,
        last_validation,
    })
}

/// Writes the history (after `past`, numbering on from it) into `outputs`; with `rates` (a
/// schedule and the first rate), each update's rate in a column; with a validation history,
/// the validation loss in the last column.
pub fn write(
    outputs: &mut Outputs,
    path: &Path,
    past: Option<&PastHistory>,
    outcome: &Outcome,
    rates: Option<(Schedule, f64, u64)>,
    plan: Option<&BatchPlan>,
    validated: bool,
) -> Result<()> {
    let offset = past.map_or(0, PastHistory::offset);
    outputs.write(path, |w| {
        let io = |e| Error::io(path, e);
        writeln!(w, "{}", header(rates.is_some(), validated, plan.is_some())).map_err(io)?;
        if let Some(p) = past {
            w.write_all(p.rows.as_bytes()).map_err(io)?;
        }
        let updates = outcome.steps();
        for r in &outcome.records_with_end() {
            write!(w, "{}", r.step + offset).map_err(io)?;
            if let Some(plan) = plan {
                // The end row's state comes after the last update, in its epoch.
                let epoch = plan.epoch_of(r.step.min(updates.max(1))) + 1;
                write!(w, ",{epoch}").map_err(io)?;
            }
            write!(w, ",{:e},{:e}", r.loss, r.gradient_norm).map_err(io)?;
            match rates {
                // This run's update r.step, counted on from the run it continues.
                Some((schedule, first, before)) if r.step <= updates => {
                    let rate = schedule.rate(first, before + r.step as u64);
                    write!(w, ",{rate:e}").map_err(io)?
                }
                Some(_) => write!(w, ",").map_err(io)?,
                None => {}
            }
            if validated {
                match (validation_loss_of(outcome, r.step), past) {
                    (Some(loss), _) => write!(w, ",{loss:e}").map_err(io)?,
                    // The weights the run continues from: their loss as the file had it.
                    (None, Some(p)) if r.step == 1 => {
                        write!(w, ",{}", p.last_validation).map_err(io)?
                    }
                    (None, _) => write!(w, ",").map_err(io)?,
                }
            }
            writeln!(w).map_err(io)?;
        }
        Ok(())
    })
}

//! The `--history` file: CSV `step,loss,gradient_norm`, one row per step with the loss and the
//! gradient norm before that step's update, and a last row with the state the run ended in
//! (numbered one past the last update). A resumed run (`--init`) starts from that state, so its
//! first row takes the place of the last row of the file it continues.

use std::io::Write;
use std::path::Path;

use downhill::output::Outputs;
use downhill::{Error, Outcome, Result};

/// The header every history file starts with.
pub const HEADER: &str = "step,loss,gradient_norm";

/// An existing history file, read to be continued.
pub struct PastHistory {
    /// The file's rows after the header, the last one (the state the run continues from) left
    /// out.
    rows: String,
    /// The step number of the last row (1 when it has only that row, 0 when it has none).
    pub last_step: usize,
}

impl PastHistory {
    /// The step number a continuing run's first row takes.
    pub fn offset(&self) -> usize {
        self.last_step.saturating_sub(1)
    }
}

/// Reads an existing history to be continued.
pub fn read(path: &Path) -> Result<PastHistory> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut lines = text.lines();
    if lines.next().map(|l| l.trim_start_matches('\u{feff}')) != Some(HEADER) {
        return Err(Error::BadData {
            path: path.to_path_buf(),
            message: format!(
                "not a downhill loss history (expected the header {HEADER}); give another \
                 --history to start a new one"
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
    Ok(PastHistory { rows, last_step })
}

/// Writes the history (after `past`, numbering on from it) into `outputs`.
pub fn write(
    outputs: &mut Outputs,
    path: &Path,
    past: Option<&PastHistory>,
    outcome: &Outcome,
) -> Result<()> {
    let offset = past.map_or(0, PastHistory::offset);
    outputs.write(path, |w| {
        let io = |e| Error::io(path, e);
        writeln!(w, "{HEADER}").map_err(io)?;
        if let Some(p) = past {
            w.write_all(p.rows.as_bytes()).map_err(io)?;
        }
        for r in &outcome.records_with_end() {
            writeln!(w, "{},{:e},{:e}", r.step + offset, r.loss, r.gradient_norm).map_err(io)?;
        }
        Ok(())
    })
}

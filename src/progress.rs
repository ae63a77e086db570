//! A progress bar on stderr, fed by the descent loop. indicatif draws nothing when stderr is
//! not a terminal, so scripts and CI logs stay clean.

use indicatif::{ProgressBar, ProgressStyle};

use crate::descent::{Observer, StepRecord};

/// Shows the step count and the current loss.
pub struct ProgressObserver {
    bar: ProgressBar,
}

impl ProgressObserver {
    /// No bar at all (the processes of a data-parallel run other than the one that reports).
    pub fn hidden() -> Self {
        ProgressObserver {
            bar: ProgressBar::hidden(),
        }
    }

    /// A bar for a run of up to `max_steps` steps.
    pub fn new(max_steps: usize) -> Self {
        let bar = ProgressBar::new(max_steps as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} step {pos}/{len} [{bar:30}] {msg} ({elapsed}, eta {eta})",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        ProgressObserver { bar }
    }
}

impl Observer for ProgressObserver {
    fn observe(&mut self, history: &[StepRecord], _max_steps: usize) {
        if let Some(last) = history.last() {
            self.bar.set_position(last.step as u64);
            self.bar.set_message(format!("loss {:.6e}", last.loss));
        }
    }

    fn finish(&mut self) {
        self.bar.finish_and_clear();
    }
}

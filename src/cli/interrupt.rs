//! Ctrl-C (SIGINT) and SIGTERM during a run: the first asks the descent loop to stop after the
//! chunk of steps in flight, so the weights and history so far are written as usual; a second
//! one exits at once (outputs are only ever renamed into place, so no file is left half
//! written).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use downhill::descent::{Observer, StepRecord};
use downhill::{Error, Result};
use signal_hook::consts::{SIGINT, SIGTERM};

/// Exit code after SIGINT (128 + 2), as shells report it.
pub const SIGINT_EXIT: u8 = 130;
/// Exit code after SIGTERM (128 + 15).
pub const SIGTERM_EXIT: u8 = 143;

/// The installed handlers; an observer that asks the run to stop once a signal came.
pub struct Interrupts {
    int: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
}

impl Interrupts {
    /// Installs the handlers for the rest of the process.
    pub fn install() -> Result<Self> {
        let int = Arc::new(AtomicBool::new(false));
        let term = Arc::new(AtomicBool::new(false));
        let install = || -> std::io::Result<()> {
            // Registered first, so the second signal (flag already set) exits at once; the
            // flag setters registered after them mark the first.
            signal_hook::flag::register_conditional_shutdown(
                SIGINT,
                i32::from(SIGINT_EXIT),
                int.clone(),
            )?;
            signal_hook::flag::register_conditional_shutdown(
                SIGTERM,
                i32::from(SIGTERM_EXIT),
                term.clone(),
            )?;
            signal_hook::flag::register(SIGINT, int.clone())?;
            signal_hook::flag::register(SIGTERM, term.clone())?;
            Ok(())
        };
        install().map_err(|e| {
            Error::InvalidArgument(format!("installing the signal handlers failed: {e}"))
        })?;
        Ok(Interrupts { int, term })
    }

    /// The exit code for the signal that came, if one did.
    pub fn exit_code(&self) -> Option<u8> {
        if self.term.load(Ordering::SeqCst) {
            Some(SIGTERM_EXIT)
        } else if self.int.load(Ordering::SeqCst) {
            Some(SIGINT_EXIT)
        } else {
            None
        }
    }
}

impl Observer for Interrupts {
    fn observe(&mut self, _history: &[StepRecord], _max_steps: usize) {}

    fn stop_requested(&self) -> bool {
        self.exit_code().is_some()
    }
}

//! Ctrl-C (SIGINT) and SIGTERM, for every command.
//!
//! While `train` descends, the first signal asks the loop to stop after the round of steps in
//! flight, so the weights and history so far are written as usual. Any other signal (the
//! second one, or the first one for a command that cannot stop half way) ends the process at
//! once: the temporary files being written are removed first and the message says so, so no
//! `.downhill-*.tmp` file is left behind and no output is half written.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use downhill::descent::{Observer, StepRecord};
use downhill::{Error, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Exit code after SIGINT (128 + 2), as shells report it.
pub const SIGINT_EXIT: u8 = 130;
/// Exit code after SIGTERM (128 + 15).
pub const SIGTERM_EXIT: u8 = 143;

/// The signal that came, shared with the thread that receives them.
#[derive(Default)]
struct Flags {
    int: AtomicBool,
    term: AtomicBool,
    /// Whether the running command stops by itself after a first signal.
    graceful: AtomicBool,
    /// Whether a graceful stop goes unsaid (every process but the first of a data-parallel
    /// run: the first says it once for all).
    quiet: AtomicBool,
    /// Whether the process was started by an MPI launcher, which repeats its SIGTERM (and
    /// ends the process with SIGKILL after its own timeout): once stopping, later signals
    /// are the launcher's and are let be, so the weights reached are still written.
    launched: AtomicBool,
    /// Set once a graceful stop has begun.
    stopping: AtomicBool,
    /// Signals delivered, counted in the handler itself: two signals in quick succession can
    /// wake the signal thread only once, and must still count as a second signal.
    delivered: AtomicUsize,
}

/// The installed handlers; an observer that asks the run to stop once a signal came.
pub struct Interrupts {
    flags: Arc<Flags>,
}

impl Interrupts {
    /// Installs the handlers for the rest of the process. A command that is not `graceful`
    /// exits at the first signal (after removing its unfinished outputs).
    pub fn install(graceful: bool) -> Result<Self> {
        let flags = Arc::new(Flags::default());
        flags.graceful.store(graceful, Ordering::SeqCst);
        // The counting actions first: signal-hook runs a signal's actions in the order they
        // were registered, so a signal is counted before the iterator below is woken for it
        // (the other way round, a second Ctrl-C could be read as a first one).
        for signal in [SIGINT, SIGTERM] {
            let counter = flags.clone();
            // SAFETY: the action only increments an atomic, which is async-signal-safe.
            unsafe {
                signal_hook::low_level::register(signal, move || {
                    counter.delivered.fetch_add(1, Ordering::SeqCst);
                })
            }
            .map_err(|e| {
                Error::InvalidArgument(format!("installing the signal handlers failed: {e}"))
            })?;
        }
        let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(|e| {
            Error::InvalidArgument(format!("installing the signal handlers failed: {e}"))
        })?;
        let shared = flags.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    let (flag, code, name) = if signal == SIGTERM {
                        (&shared.term, SIGTERM_EXIT, "SIGTERM")
                    } else {
                        (&shared.int, SIGINT_EXIT, "Ctrl-C")
                    };
                    let first = shared.delivered.load(Ordering::SeqCst) <= 1;
                    flag.store(true, Ordering::SeqCst);
                    let launched = shared.launched.load(Ordering::SeqCst);
                    if launched && shared.stopping.load(Ordering::SeqCst) {
                        continue;
                    }
                    if first && shared.graceful.load(Ordering::SeqCst) {
                        shared.stopping.store(true, Ordering::SeqCst);
                        if shared.quiet.load(Ordering::SeqCst) {
                            continue;
                        }
                        let again = if launched {
                            "mpirun ends the job if it takes longer than its kill timeout"
                        } else {
                            "again to stop at once"
                        };
                        eprintln!(
                            "downhill: {name}: stopping after the steps in flight and writing \
                             what was reached ({again})"
                        );
                        continue;
                    }
                    exit_now(name, code);
                }
            })
            .map_err(|e| {
                Error::InvalidArgument(format!("starting the signal thread failed: {e}"))
            })?;
        Ok(Interrupts { flags })
    }

    /// Whether a first signal stops the work gracefully (`train` while it descends) or ends the
    /// process at once, removing unfinished outputs (everything else, `train`'s set-up and
    /// writing included).
    pub fn set_graceful(&self, graceful: bool) {
        self.flags.graceful.store(graceful, Ordering::SeqCst);
    }

    /// Leaves a graceful stop unsaid (the first process of a data-parallel run says it).
    pub fn set_quiet(&self) {
        self.flags.quiet.store(true, Ordering::SeqCst);
    }

    /// Marks a process an MPI launcher started: once it is stopping, the launcher's later
    /// signals do not cut the writing of what was reached short.
    pub fn set_launched(&self) {
        self.flags.launched.store(true, Ordering::SeqCst);
    }

    /// The exit code for the signal that came, if one did.
    pub fn exit_code(&self) -> Option<u8> {
        if self.flags.term.load(Ordering::SeqCst) {
            Some(SIGTERM_EXIT)
        } else if self.flags.int.load(Ordering::SeqCst) {
            Some(SIGINT_EXIT)
        } else {
            None
        }
    }
}

/// Removes the outputs being written, says so, and exits with `code` without unwinding (the
/// main thread may be anywhere).
fn exit_now(name: &str, code: u8) -> ! {
    let removed = downhill::output::remove_unfinished();
    if removed.is_empty() {
        eprintln!("downhill: {name}: stopped");
    } else {
        let names: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "downhill: {name}: stopped; {} not written (its unfinished temporary file was removed)",
            names.join(", ")
        );
    }
    signal_hook::low_level::exit(i32::from(code))
}

impl Observer for Interrupts {
    fn observe(&mut self, _history: &[StepRecord], _max_steps: usize) {}

    fn stop_requested(&self) -> bool {
        self.exit_code().is_some()
    }
}

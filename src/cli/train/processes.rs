//! One `train` process among several (`mpirun`, the `mpi` feature): the processes' world,
//! signals as such a process takes them, and engines that evaluate this process's share and
//! step on the sums over every share. Without the feature, every run is one process's.

use downhill::descent::{Observer, StepRecord};
use downhill::{Engine, Result};

use crate::cli::interrupt::Interrupts;

/// The processes of a data-parallel run (none without the `mpi` feature).
#[cfg(feature = "mpi")]
pub use downhill::distributed::World;
#[cfg(not(feature = "mpi"))]
pub type World = NoWorld;

/// What stops a descent on a signal: the interrupts alone, or among processes agreed on, so
/// that an interrupt reaching one process stops every process after the same round.
pub enum Stopping<'a> {
    Alone(&'a mut Interrupts),
    #[cfg(feature = "mpi")]
    Agreed(downhill::distributed::AgreedStop<'a>),
}

/// The observer that stops `world`'s descent (alone: this process's) on a signal.
pub fn stopping<'a>(interrupts: &'a mut Interrupts, world: Option<&'a World>) -> Stopping<'a> {
    #[cfg(feature = "mpi")]
    if let Some(world) = world {
        return Stopping::Agreed(downhill::distributed::AgreedStop {
            inner: interrupts,
            world,
        });
    }
    let _ = world;
    Stopping::Alone(interrupts)
}

impl Stopping<'_> {
    fn observer(&mut self) -> &mut dyn Observer {
        match self {
            Stopping::Alone(interrupts) => *interrupts,
            #[cfg(feature = "mpi")]
            Stopping::Agreed(agreed) => agreed,
        }
    }
}

impl Observer for Stopping<'_> {
    fn observe(&mut self, history: &[StepRecord], max_steps: usize) {
        self.observer().observe(history, max_steps);
    }

    fn finish(&mut self) {
        self.observer().finish();
    }

    fn stop_requested(&self) -> bool {
        match self {
            Stopping::Alone(interrupts) => interrupts.stop_requested(),
            #[cfg(feature = "mpi")]
            Stopping::Agreed(agreed) => agreed.stop_requested(),
        }
    }
}

/// Without the `mpi` feature, every run is one process's.
#[cfg(not(feature = "mpi"))]
pub struct NoWorld;

#[cfg(not(feature = "mpi"))]
impl NoWorld {
    pub fn is_root(&self) -> bool {
        true
    }

    pub fn rank(&self) -> usize {
        0
    }

    pub fn size(&self) -> usize {
        1
    }
}

/// Signals as one process of a data-parallel run takes them: the launcher's repeated SIGTERM
/// let be once stopping, and the stop told by the first process alone.
pub fn among_processes(interrupts: &Interrupts, world: Option<&World>) {
    if let Some(world) = world {
        interrupts.set_launched();
        if !world.is_root() {
            interrupts.set_quiet();
        }
    }
}

/// `engine` as this process's part of a data-parallel run: it evaluates the process's share,
/// and each step is taken on the evaluation summed over every share. Alone, `engine` itself.
pub fn over_processes<'a>(
    engine: Box<dyn Engine + 'a>,
    world: Option<&World>,
) -> Result<Box<dyn Engine + 'a>> {
    #[cfg(feature = "mpi")]
    if let Some(world) = world {
        let shared = downhill::cpu::SharedEngine::new(engine, world.share_sum())?;
        return Ok(Box::new(shared));
    }
    let _ = world;
    Ok(engine)
}

/// `sweep` as this process's part of a data-parallel run: one pass over the process's share
/// evaluates every run, and each run steps on its evaluation summed over every share. Alone,
/// `sweep` itself.
pub fn sweep_over_processes<'a>(
    sweep: Box<dyn downhill::sweep::SweepEngine + 'a>,
    world: Option<&World>,
) -> Result<Box<dyn downhill::sweep::SweepEngine + 'a>> {
    #[cfg(feature = "mpi")]
    if let Some(world) = world {
        let shared = downhill::cpu::SharedSweep::new(sweep, world.share_sum())?;
        return Ok(Box::new(shared));
    }
    let _ = world;
    Ok(sweep)
}

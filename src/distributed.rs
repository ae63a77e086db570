//! Full-batch descent over points spread across processes with MPI (the `mpi` feature).
//!
//! Gradient descent on the squared error is a sum over points: each process holds only its
//! share of the points (rows `r N / R .. (r + 1) N / R` of `R` processes), computes the SSE
//! and its gradient over it, and an all-reduce sums them in f64. Every process then applies
//! the same update to the same weights, so the weights stay identical everywhere (checked
//! every [`CHECK_EVERY`] evaluations by comparing a hash of them). Runs under a launcher
//! (`mpirun -np R downhill train ...`); a process started alone, or a world of one, behaves
//! exactly as without MPI.

use std::cell::RefCell;
use std::ops::Range;
use std::path::Path;

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use crate::data::Table;
use crate::descent::{Observer, ShareSum, StepRecord};
use crate::error::{Error, Result};
use crate::loss::Evaluation;
use crate::network::Network;

/// Evaluations between two checks that every process holds the same weights.
pub const CHECK_EVERY: u64 = 64;

/// Variables an MPI launcher sets in every process it starts (Open MPI's `mpirun`, MPICH's
/// Hydra, PMIx-based launchers such as Slurm's `srun`).
const LAUNCHED_BY: [&str; 3] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"];

/// The processes of one data-parallel run.
pub struct World {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    /// Finalises MPI when the world is dropped: declared last, dropped last.
    _universe: Universe,
}

/// Rows `rank N / size .. (rank + 1) N / size` of `points`: every process a share within one
/// point of the others'.
pub fn share(rank: usize, size: usize, points: usize) -> Range<usize> {
    let at = |r: usize| (r as u128 * points as u128 / size.max(1) as u128) as usize;
    at(rank)..at(rank + 1)
}

impl World {
    /// The processes a launcher started with this one; `None` when it runs alone (no
    /// launcher, or a world of one process), and nothing changes.
    pub fn join() -> Result<Option<World>> {
        if !LAUNCHED_BY.iter().any(|v| std::env::var_os(v).is_some()) {
            return Ok(None);
        }
        let Some(universe) = mpi::initialize() else {
            return Err(Error::Unsupported("MPI was initialised twice".into()));
        };
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        if size < 2 {
            return Ok(None);
        }
        Ok(Some(World {
            world,
            rank,
            size,
            _universe: universe,
        }))
    }

    /// This process's rank (0 writes the outputs).
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of processes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether this process writes the outputs and the report.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// This process's share of `points` points, refused when a process would have none.
    pub fn share(&self, points: usize) -> Result<Range<usize>> {
        if points < self.size {
            return Err(Error::InvalidArgument(format!(
                "{points} points for {} processes: every process needs at least one",
                self.size
            )));
        }
        Ok(share(self.rank, self.size, points))
    }

    /// Ends every process of the run at once with exit code `code` (one that fails must not
    /// leave the others waiting for it).
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }

    /// This process's share of the rows of a `.csv` or `.npy` file, and the file's rows (see
    /// [`Table::load_share`]); a file with fewer rows than processes is refused.
    pub fn read_share(&self, path: &Path) -> Result<(Table, usize)> {
        // The share is known once the file's rows are: the refusal of a file with fewer
        // rows than processes comes back through the cell.
        let refused = RefCell::new(None);
        let share = |rows: usize| match self.share(rows) {
            Ok(share) => share,
            Err(e) => {
                *refused.borrow_mut() = Some(e);
                0..0
            }
        };
        let read = Table::load_share(path, share);
        if let Some(e) = refused.into_inner() {
            return Err(e);
        }
        read
    }

    /// `result` agreed between the processes: where it failed on any process, every process
    /// fails with the error of the first that did (its message and exit code), so that a bad
    /// file is told the same way everywhere, and no process goes on to wait for the others.
    pub fn agree<T>(&self, result: Result<T>) -> Result<T> {
        let mine = if result.is_err() {
            self.rank as i32
        } else {
            i32::MAX
        };
        let mut first = 0i32;
        self.world
            .all_reduce_into(&mine, &mut first, SystemOperation::min());
        if first == i32::MAX {
            return result;
        }
        let (mut exit_code, mut message) = match &result {
            Err(error) => (error.exit_code(), error.to_string().into_bytes()),
            Ok(_) => (0, Vec::new()),
        };
        let teller = self.world.process_at_rank(first);
        let mut length = message.len() as u64;
        teller.broadcast_into(&mut length);
        teller.broadcast_into(&mut exit_code);
        message.resize(length as usize, 0);
        teller.broadcast_into(&mut message[..]);
        Err(Error::OnEveryProcess {
            message: String::from_utf8_lossy(&message).into_owned(),
            exit_code,
        })
    }

    /// Sums `values` over every process, in place (every process gets the sums).
    pub fn sum(&self, values: &mut [f64]) {
        let mine = values.to_vec();
        self.world
            .all_reduce_into(&mine[..], values, SystemOperation::sum());
    }

    /// Whether `flag` is set on any process (every process gets the answer).
    pub fn any(&self, flag: bool) -> bool {
        let mut any = 0u32;
        self.world
            .all_reduce_into(&u32::from(flag), &mut any, SystemOperation::max());
        any > 0
    }

    /// An error unless every process holds the same weights as this one, run by run.
    pub fn check_same_weights(&self, nets: &[&Network]) -> Result<()> {
        same_weights(&self.world, nets, self.rank, self.size)
    }

    /// The sum of every process's evaluations (one per run), for
    /// [`crate::cpu::SharedEngine`] and [`crate::cpu::SharedSweep`]: the points, the SSE and
    /// its gradient of every run are summed in one all-reduce, and every [`CHECK_EVERY`]
    /// evaluations the weights are compared.
    pub fn share_sum(&self) -> ShareSum {
        let world = self.world.duplicate();
        let (rank, size) = (self.rank, self.size);
        let mut evaluations = 0u64;
        Box::new(
            move |evaluations_now: &mut [Evaluation], nets: &[&Network]| {
                let mut values = Vec::new();
                for evaluation in evaluations_now.iter() {
                    values.push(evaluation.points as f64);
                    values.push(evaluation.sse);
                    values.extend_from_slice(&evaluation.sse_gradient);
                }
                let mut sums = vec![0.0; values.len()];
                world.all_reduce_into(&values[..], &mut sums[..], SystemOperation::sum());
                let mut at = 0;
                for evaluation in evaluations_now.iter_mut() {
                    let gradient = evaluation.sse_gradient.len();
                    evaluation.points = sums[at] as usize;
                    evaluation.sse = sums[at + 1];
                    evaluation
                        .sse_gradient
                        .copy_from_slice(&sums[at + 2..at + 2 + gradient]);
                    at += 2 + gradient;
                }
                evaluations += 1;
                if evaluations % CHECK_EVERY == 1 {
                    same_weights(&world, nets, rank, size)?;
                }
                Ok(())
            },
        )
    }
}

/// An error unless every process of `world` holds `nets`' weights (process `rank` of `size`).
fn same_weights(
    world: &SimpleCommunicator,
    nets: &[&Network],
    rank: usize,
    size: usize,
) -> Result<()> {
    let hash = nets
        .iter()
        .fold(0u64, |hash, net| hash.rotate_left(7) ^ weights_hash(net));
    let (mut low, mut high) = (0u64, 0u64);
    world.all_reduce_into(&hash, &mut low, SystemOperation::min());
    world.all_reduce_into(&hash, &mut high, SystemOperation::max());
    if low == high {
        Ok(())
    } else {
        Err(Error::Distributed(format!(
            "the processes' weights differ (process {rank} of {size}): the data-parallel run \
             is no longer one run"
        )))
    }
}

/// A hash of the weights' bits (FNV-1a): equal weights give equal hashes on every machine.
fn weights_hash(net: &Network) -> u64 {
    net.params()
        .iter()
        .flat_map(|p| p.to_bits().to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// An observer whose stop request every process agrees on: stopped on one process (an
/// interrupt that reached it), every process stops after the same round.
pub struct AgreedStop<'a> {
    pub inner: &'a mut dyn Observer,
    pub world: &'a World,
}

impl Observer for AgreedStop<'_> {
    fn observe(&mut self, history: &[StepRecord], max_steps: usize) {
        self.inner.observe(history, max_steps);
    }

    fn finish(&mut self) {
        self.inner.finish();
    }

    fn stop_requested(&self) -> bool {
        self.world.any(self.inner.stop_requested())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_points_once_and_evenly() {
        for (points, size) in [(10, 3), (7, 7), (1_000_001, 4), (5, 2)] {
            let shares: Vec<Range<usize>> = (0..size).map(|r| share(r, size, points)).collect();
            assert_eq!(shares[0].start, 0);
            assert_eq!(shares[size - 1].end, points);
            for pair in shares.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
            }
            let lens: Vec<usize> = shares.iter().map(|s| s.len()).collect();
            let (low, high) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
            assert!(high - low <= 1, "{lens:?}");
        }
    }
}

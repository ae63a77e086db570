//! Mini-batches: one step per batch of points, the points shuffled every epoch.
//!
//! An epoch is one pass over the training points in an order drawn from the seed: a
//! permutation of `0..points` per epoch (Fisher-Yates driven by ChaCha8, stream `epoch`), the
//! same on every machine and for both paths: the CPU gathers its batches on the host, the GPU
//! on the device from the permutation uploaded once per epoch. Batch `b` of an epoch holds the
//! permuted points `b * size .. (b + 1) * size`; the last one keeps what is left (it may be
//! smaller) and its loss is averaged over its own points. Steps are numbered through the
//! epochs: step `s` (1-based) is batch `(s - 1) % per_epoch` of epoch `(s - 1) / per_epoch`,
//! counting the steps of the run a resumed one continues ([`BatchPlan::after`]).

use std::ops::Range;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;

use crate::data::{Dataset, Points};
use crate::descent::StepRecord;
use crate::error::{Error, Result};

/// How the points of a training set are cut into batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPlan {
    points: usize,
    size: usize,
    seed: u64,
    /// Steps taken before this run's first (a resumed run's): its step `s` is step
    /// `s + before` of the epochs.
    before: usize,
}

impl BatchPlan {
    /// Batches of `size` points of a set of `points`, shuffled by `seed`; a size of 0 or
    /// more than the points is refused.
    pub fn new(points: usize, size: usize, seed: u64) -> Result<Self> {
        if size == 0 || size > points {
            return Err(Error::InvalidArgument(format!(
                "--batch-size {size}: expected a number of points from 1 to the {points} \
                 training points"
            )));
        }
        if points > u32::MAX as usize {
            return Err(Error::Unsupported(format!(
                "mini-batches over {points} points: at most {} points are shuffled",
                u32::MAX
            )));
        }
        Ok(BatchPlan {
            points,
            size,
            seed,
            before: 0,
        })
    }

    /// The same plan for a run that continues one of `steps` steps: it takes the batches
    /// the uninterrupted run would have taken next.
    pub fn after(self, steps: usize) -> Self {
        BatchPlan {
            before: steps,
            ..self
        }
    }

    /// Steps taken before this run's first.
    pub fn before(&self) -> usize {
        self.before
    }

    /// An error unless the plan cuts a set of `points` points (the engine's data).
    pub fn check_points(&self, points: usize) -> Result<()> {
        if self.points == points {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "a plan of batches of {} points for {points} points",
                self.points
            )))
        }
    }

    /// Points per batch (the last batch of an epoch may have fewer).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Points in the training set.
    pub fn points(&self) -> usize {
        self.points
    }

    /// Batches (steps) per epoch.
    pub fn per_epoch(&self) -> usize {
        self.points.div_ceil(self.size)
    }

    /// Whether every epoch is one batch of every point: plain full-batch descent (the order of
    /// the points does not change its gradient, so none is drawn).
    pub fn is_full(&self) -> bool {
        self.size == self.points
    }

    /// The epoch (0-based) of step `step` (1-based, of this run).
    pub fn epoch_of(&self, step: usize) -> usize {
        (step + self.before).saturating_sub(1) / self.per_epoch()
    }

    /// The batch within its epoch (0-based) of step `step` (1-based, of this run).
    pub fn batch_of(&self, step: usize) -> usize {
        (step + self.before).saturating_sub(1) % self.per_epoch()
    }

    /// The positions in the epoch's order that batch `batch` takes.
    pub fn range(&self, batch: usize) -> Range<usize> {
        let start = batch * self.size;
        start..(start + self.size).min(self.points)
    }

    /// The order of the points in epoch `epoch`: a permutation of `0..points`, drawn from the
    /// seed and the epoch alone (so a resumed or checked run draws the same).
    pub fn permutation(&self, epoch: usize) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.points as u32).collect();
        if !self.is_full() {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
            rng.set_stream(epoch as u64);
            order.shuffle(&mut rng);
        }
        order
    }

    /// Epoch `epoch`'s batches of `data`, gathered into `batches` (made on the first call,
    /// refilled in place on the next ones).
    pub fn gather(&self, data: &Points, epoch: usize, batches: &mut Vec<Dataset>) -> Result<()> {
        let order = self.permutation(epoch);
        if batches.len() != self.per_epoch() {
            batches.clear();
            for b in 0..self.per_epoch() {
                let indices = &order[self.range(b)];
                batches.push(data.gathered(indices)?);
            }
            return Ok(());
        }
        batches
            .par_iter_mut()
            .enumerate()
            .for_each(|(b, batch)| batch.fill_from(data, &order[self.range(b)]));
        Ok(())
    }

    /// The mean loss of each epoch whose batches are all in `history` (steps numbered from 1),
    /// each batch weighted by its points: the loss over the epoch's points at the weights
    /// each met, as Keras reports it.
    pub fn epoch_losses(&self, history: &[StepRecord]) -> Vec<f64> {
        // A resumed run may begin within an epoch: its first whole one starts later.
        let into_epoch = self.before % self.per_epoch();
        let first_whole = (self.per_epoch() - into_epoch) % self.per_epoch();
        history
            .get(first_whole..)
            .unwrap_or_default()
            .chunks_exact(self.per_epoch())
            .map(|epoch| {
                let sum: f64 = epoch
                    .iter()
                    .map(|r| r.loss * self.range(self.batch_of(r.step)).len() as f64)
                    .sum();
                sum / self.points as f64
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_walk_through_the_batches_of_each_epoch() {
        let plan = BatchPlan::new(10, 4, 1).unwrap();
        assert_eq!(plan.per_epoch(), 3);
        assert_eq!(plan.range(2), 8..10);
        let places: Vec<(usize, usize)> = (1..=7)
            .map(|s| (plan.epoch_of(s), plan.batch_of(s)))
            .collect();
        assert_eq!(
            places,
            [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0)]
        );
    }

    #[test]
    fn permutations_are_drawn_from_seed_and_epoch() {
        let plan = BatchPlan::new(1000, 10, 7).unwrap();
        let first = plan.permutation(0);
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
        assert_eq!(first, plan.permutation(0));
        assert_ne!(first, plan.permutation(1));
        assert_ne!(first, BatchPlan::new(1000, 10, 8).unwrap().permutation(0));
        // A full batch keeps the points' order.
        let full = BatchPlan::new(5, 5, 7).unwrap();
        assert_eq!(full.permutation(3), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_resumed_plan_takes_the_next_batches() {
        let plan = BatchPlan::new(10, 4, 1).unwrap();
        let resumed = plan.after(4);
        for step in 1..=7 {
            assert_eq!(resumed.epoch_of(step), plan.epoch_of(step + 4));
            assert_eq!(resumed.batch_of(step), plan.batch_of(step + 4));
        }
        // Its first whole epoch starts at its third step (the uninterrupted run's seventh).
        let history: Vec<StepRecord> = (1..=5)
            .map(|step| StepRecord {
                step,
                loss: if step < 3 { 100.0 } else { 1.0 },
                gradient_norm: 0.0,
            })
            .collect();
        assert_eq!(resumed.epoch_losses(&history), [1.0]);
    }

    #[test]
    fn sizes_outside_the_data_are_refused() {
        assert!(BatchPlan::new(10, 0, 1).is_err());
        assert!(BatchPlan::new(10, 11, 1).is_err());
        assert!(BatchPlan::new(10, 10, 1).unwrap().is_full());
    }

    #[test]
    fn epoch_losses_weigh_the_last_batch_by_its_points() {
        let plan = BatchPlan::new(10, 4, 1).unwrap();
        let history: Vec<StepRecord> = [1.0, 1.0, 4.0, 2.0]
            .iter()
            .enumerate()
            .map(|(i, &loss)| StepRecord {
                step: i + 1,
                loss,
                gradient_norm: 0.0,
            })
            .collect();
        // (4 * 1 + 4 * 1 + 2 * 4) / 10; the second epoch is not complete.
        assert_eq!(plan.epoch_losses(&history), [1.6]);
    }
}

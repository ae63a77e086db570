//! `train --verify`: the GPU path checked step by step against the CPU path.
//!
//! [`Verified`] runs both engines in lockstep behind the [`Engine`] interface, so the descent
//! loop does not know it is being checked. After each chunk it compares the losses of the
//! steps both made; at the end the caller compares the weights.
//!
//! Tolerance: both paths compute in f32 but sum in different orders (the CPU by tiles in f64,
//! the GPU by trees in f32), so their losses differ by about 1e-6 relative at first and the
//! difference grows slowly along the trajectory: on lavapipe the default 170-step run ends
//! 5e-7 apart in the loss and 3e-7 in the weights. [`TOLERANCE`] (1e-4 relative) leaves two
//! orders of magnitude of room for other adapters and longer runs while still catching any real
//! error in a kernel (a wrong term moves the loss by far more).

use crate::descent::{Chunk, Engine, StepRule};
use crate::error::Result;
use crate::loss::Evaluation;
use crate::network::Network;

/// Largest relative deviation allowed between the paths.
pub const TOLERANCE: f64 = 1e-4;

/// Relative deviation of `a` from `b`, safe at zero.
pub fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(a.abs()).max(1e-30)
}

/// Largest deviation between two networks' weights, relative to `1 + |w|`.
pub fn weight_deviation(a: &Network, b: &Network) -> f64 {
    a.params()
        .iter()
        .zip(b.params())
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0, f64::max)
}

/// An engine checked against a reference engine.
pub struct Verified<'a> {
    pub checked: Box<dyn Engine + 'a>,
    pub reference: Box<dyn Engine + 'a>,
    /// Largest relative loss deviation seen so far.
    pub worst: f64,
    /// Number of steps compared.
    pub compared: usize,
}

impl<'a> Verified<'a> {
    /// Runs `checked` with `reference` in lockstep.
    pub fn new(checked: Box<dyn Engine + 'a>, reference: Box<dyn Engine + 'a>) -> Self {
        Verified {
            checked,
            reference,
            worst: 0.0,
            compared: 0,
        }
    }

    /// The largest deviation of the final weights.
    pub fn weight_deviation(&mut self) -> Result<f64> {
        Ok(weight_deviation(
            &self.checked.network()?,
            &self.reference.network()?,
        ))
    }
}

impl Engine for Verified<'_> {
    fn device(&self) -> String {
        format!(
            "{} verified against {}",
            self.checked.device(),
            self.reference.device()
        )
    }

    fn run_steps(&mut self, first_step: usize, count: usize, rule: &StepRule) -> Result<Chunk> {
        let got = self.checked.run_steps(first_step, count, rule)?;
        let want = self.reference.run_steps(first_step, count, rule)?;
        for (g, w) in got.records.iter().zip(&want.records) {
            self.worst = self.worst.max(relative(g.loss, w.loss));
            self.compared += 1;
        }
        Ok(got)
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        let want = self.reference.evaluate()?;
        let got = self.checked.evaluate()?;
        self.worst = self.worst.max(relative(got.sse, want.sse));
        Ok(got)
    }

    fn network(&mut self) -> Result<Network> {
        self.checked.network()
    }

    fn preferred_chunk(&self) -> usize {
        self.checked.preferred_chunk()
    }
}

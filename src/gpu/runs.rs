//! The GPU's sweep engine: the data uploaded once and the kernels built once, each run's
//! weights parked on the device and brought into the engine for its round of steps. Every run
//! takes exactly the steps it takes alone; each run still reads the data itself, so a step of
//! R runs costs R passes (the CPU's sweep engine shares one pass among all runs).

use super::engine::{GpuEngine, ParkedRun};
use crate::descent::{Engine, Round, StepRule};
use crate::error::{Error, Result};
use crate::loss::Evaluation;
use crate::network::Network;
use crate::sweep::SweepEngine;

/// Many runs of gradient descent on one GPU engine.
pub struct GpuSweep {
    engine: GpuEngine,
    runs: Vec<ParkedRun>,
}

impl GpuSweep {
    /// A sweep of the runs `nets` (one shape: `engine`'s) on `engine`, which holds the data.
    pub fn new(mut engine: GpuEngine, nets: &[Network]) -> Result<Self> {
        if nets.is_empty() {
            return Err(Error::InvalidArgument(
                "a sweep needs at least one run".into(),
            ));
        }
        let runs = nets
            .iter()
            .map(|net| {
                engine.load_network(net)?;
                engine.park()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GpuSweep { engine, runs })
    }

    /// `f` on each run in turn, the run brought onto the engine first.
    fn each<T>(&mut self, mut f: impl FnMut(&mut GpuEngine, usize) -> Result<T>) -> Result<Vec<T>> {
        (0..self.runs.len())
            .map(|r| {
                self.engine.unpark(&self.runs[r]);
                f(&mut self.engine, r)
            })
            .collect()
    }
}

impl SweepEngine for GpuSweep {
    fn device(&self) -> String {
        self.engine.device()
    }

    fn runs(&self) -> usize {
        self.runs.len()
    }

    fn run_steps(
        &mut self,
        first_step: usize,
        count: usize,
        rules: &[Option<StepRule>],
    ) -> Result<Vec<Round>> {
        let mut rounds = vec![Round::default(); self.runs.len()];
        for (r, rule) in rules.iter().enumerate() {
            let Some(rule) = rule else { continue };
            self.engine.unpark(&self.runs[r]);
            rounds[r] = self.engine.run_steps(first_step, count, rule)?;
            self.engine.park_into(&mut self.runs[r]);
        }
        Ok(rounds)
    }

    fn evaluate(&mut self) -> Result<Vec<Evaluation>> {
        self.each(|engine, _| engine.evaluate())
    }

    fn networks(&mut self) -> Result<Vec<Network>> {
        self.each(|engine, _| engine.network())
    }

    fn previous_networks(&mut self) -> Result<Vec<Option<Network>>> {
        self.each(|engine, _| engine.previous_network())
    }

    fn preferred_round(&self) -> usize {
        self.engine.preferred_round()
    }
}

//! The CPU's sweep engine: many runs of one shape stepped together, every active run's
//! evaluation from one pass over the points (`CpuKernel::evaluate_many`), and each run's step
//! taken by the same function a run alone takes (`engine::host_step`).

use super::engine::{sweep_rounds, CpuVariant, HostBatches, HostRun};
use super::kernel::CpuKernel;
use crate::batches::BatchPlan;
use crate::data::Points;
use crate::descent::{Round, StepRule};
use crate::error::{Error, Result};
use crate::loss::Evaluation;
use crate::network::Network;
use crate::sweep::SweepEngine;

/// Many runs of gradient descent on the CPU, sharing each pass over the data.
pub struct CpuSweep<'a> {
    runs: Vec<HostRun>,
    data: &'a Points<'a>,
    kernel: Box<dyn CpuKernel>,
    /// With mini-batches: every run takes the same batches.
    batches: Option<HostBatches>,
}

impl<'a> CpuSweep<'a> {
    /// A sweep engine training every network of `nets` (all of one shape) on `data`.
    pub fn new(nets: Vec<Network>, data: &'a Points<'a>, variant: CpuVariant) -> Result<Self> {
        let Some(first) = nets.first() else {
            return Err(Error::InvalidArgument(
                "a sweep needs at least one run".into(),
            ));
        };
        if let Some(other) = nets.iter().find(|n| n.widths() != first.widths()) {
            return Err(Error::InvalidArgument(format!(
                "every run of a sweep has one shape: {} and {}",
                first.describe(),
                other.describe()
            )));
        }
        data.check_shape(first.inputs(), first.outputs(), "training data")?;
        let mut kernel = variant.kernel();
        kernel.prepare(first);
        Ok(CpuSweep {
            runs: nets.into_iter().map(HostRun::new).collect(),
            data,
            kernel,
            batches: None,
        })
    }

    /// A sweep whose every step takes one batch of `plan`, the same batch for every run.
    pub fn with_batches(
        nets: Vec<Network>,
        data: &'a Points<'a>,
        variant: CpuVariant,
        plan: BatchPlan,
    ) -> Result<Self> {
        let mut sweep = Self::new(nets, data, variant)?;
        sweep.batches = HostBatches::of_plan(plan, data)?;
        Ok(sweep)
    }
}

impl SweepEngine for CpuSweep<'_> {
    fn device(&self) -> String {
        format!(
            "cpu ({}, {} threads)",
            self.kernel.name(),
            rayon::current_num_threads()
        )
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
        let runs = self.runs.len();
        sweep_rounds(runs, first_step, count, rules, |step, active, rounds| {
            let nets: Vec<&Network> = active.iter().map(|&r| &self.runs[r].net).collect();
            let batch = match &mut self.batches {
                Some(batches) => batches.of_step(self.data, step)?,
                None => self.data,
            };
            let evaluations = self.kernel.evaluate_many(&nets, batch);
            let mut still = Vec::with_capacity(active.len());
            for (&r, evaluation) in active.iter().zip(&evaluations) {
                let rule = rules[r].as_ref().expect("active runs have a rule");
                if self.runs[r].step(evaluation, rule, step, &mut rounds[r])? {
                    still.push(r);
                }
            }
            Ok(still)
        })
    }

    fn evaluate(&mut self) -> Result<Vec<Evaluation>> {
        let nets: Vec<&Network> = self.runs.iter().map(|r| &r.net).collect();
        Ok(self.kernel.evaluate_many(&nets, self.data))
    }

    fn networks(&mut self) -> Result<Vec<Network>> {
        Ok(self.runs.iter().map(|r| r.net.clone()).collect())
    }

    fn set_network(&mut self, run: usize, net: &Network) -> Result<()> {
        let Some(held) = self.runs.get_mut(run) else {
            return Err(Error::InvalidArgument(format!("no run {run}")));
        };
        if net.widths() != held.net.widths() {
            return Err(Error::InvalidArgument(format!(
                "the sweep trains {}, not {}",
                held.net.describe(),
                net.describe()
            )));
        }
        held.set(net);
        Ok(())
    }

    fn previous_networks(&mut self) -> Result<Vec<Option<Network>>> {
        Ok(self.runs.iter().map(|r| r.previous.clone()).collect())
    }
}

//! The GPU's sweep engine. Where the per-point kernels take the shape, one engine holds every
//! run: each step's pass reads each point once for as many runs as the kernel has slots, and
//! a finished run drops out of the passes. The layered kernels train one run at a time: there
//! each run's weights are parked on the device and brought into the engine for its round of
//! steps (the data uploaded and the kernels built once, each run reading the data itself).
//! Either way every run takes exactly the steps it takes alone.

use super::chunks::GpuOptions;
use super::context::GpuContext;
use super::engine::{GpuEngine, ParkedRun};
use super::shaders::Shape;
use crate::batches::BatchPlan;
use crate::data::Points;
use crate::descent::{Engine, Round, StepRule};
use crate::error::{Error, Result};
use crate::loss::Evaluation;
use crate::network::Network;
use crate::sweep::SweepEngine;

/// Many runs of gradient descent on one GPU device.
pub struct GpuSweep {
    engine: GpuEngine,
    /// With the layered kernels: every run parked (the engine trains one at a time).
    parked: Option<Vec<ParkedRun>>,
}

impl GpuSweep {
    /// A sweep of the runs `nets` (of one shape) over `data`, uploaded once.
    pub fn new(
        ctx: GpuContext,
        nets: &[Network],
        data: &Points,
        options: GpuOptions,
    ) -> Result<Self> {
        Self::with_plan(ctx, nets, data, options, None)
    }

    /// A sweep whose every step takes one batch of `plan`, the same batch for every run
    /// (gathered on the device once per epoch; with the layered kernels, once per epoch of
    /// each run's round).
    pub fn with_batches(
        ctx: GpuContext,
        nets: &[Network],
        data: &Points,
        options: GpuOptions,
        plan: BatchPlan,
    ) -> Result<Self> {
        Self::with_plan(ctx, nets, data, options, Some(plan))
    }

    fn with_plan(
        ctx: GpuContext,
        nets: &[Network],
        data: &Points,
        options: GpuOptions,
        plan: Option<BatchPlan>,
    ) -> Result<Self> {
        let Some(first) = nets.first() else {
            return Err(Error::InvalidArgument(
                "a sweep needs at least one run".into(),
            ));
        };
        let engine_of = |nets: &[Network]| match plan {
            Some(plan) => GpuEngine::with_runs_batched(ctx.clone(), nets, data, options, plan),
            None => GpuEngine::with_runs(ctx.clone(), nets, data, options),
        };
        if GpuEngine::takes_runs(&Shape::of(first), options) {
            return Ok(GpuSweep {
                engine: engine_of(nets)?,
                parked: None,
            });
        }
        let mut engine = engine_of(std::slice::from_ref(first))?;
        let parked = nets
            .iter()
            .map(|net| {
                engine.load_network(net)?;
                engine.park()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GpuSweep {
            engine,
            parked: Some(parked),
        })
    }

    /// Whether every run steps in the same passes over the data (not one at a time).
    pub fn shares_passes(&self) -> bool {
        self.parked.is_none()
    }

    /// `f` on each parked run in turn, the run brought onto the engine first.
    fn each_parked<T>(
        engine: &mut GpuEngine,
        parked: &[ParkedRun],
        mut f: impl FnMut(&mut GpuEngine) -> Result<T>,
    ) -> Result<Vec<T>> {
        parked
            .iter()
            .map(|run| {
                engine.unpark(run);
                f(engine)
            })
            .collect()
    }
}

impl SweepEngine for GpuSweep {
    fn device(&self) -> String {
        self.engine.device()
    }

    fn runs(&self) -> usize {
        match &self.parked {
            Some(parked) => parked.len(),
            None => self.engine.runs(),
        }
    }

    fn run_steps(
        &mut self,
        first_step: usize,
        count: usize,
        rules: &[Option<StepRule>],
    ) -> Result<Vec<Round>> {
        let Some(parked) = &mut self.parked else {
            return self.engine.run_rounds(first_step, count, rules);
        };
        let mut rounds = vec![Round::default(); parked.len()];
        for (r, rule) in rules.iter().enumerate() {
            let Some(rule) = rule else { continue };
            self.engine.unpark(&parked[r]);
            rounds[r] = self.engine.run_steps(first_step, count, rule)?;
            self.engine.park_into(&mut parked[r]);
        }
        Ok(rounds)
    }

    fn evaluate(&mut self) -> Result<Vec<Evaluation>> {
        match &self.parked {
            Some(parked) => Self::each_parked(&mut self.engine, parked, |e| e.evaluate()),
            None => self.engine.evaluate_runs(),
        }
    }

    fn networks(&mut self) -> Result<Vec<Network>> {
        match &self.parked {
            Some(parked) => Self::each_parked(&mut self.engine, parked, |e| e.network()),
            None => self.engine.networks(),
        }
    }

    fn set_network(&mut self, run: usize, net: &Network) -> Result<()> {
        match &mut self.parked {
            Some(parked) => {
                let Some(held) = parked.get_mut(run) else {
                    return Err(Error::InvalidArgument(format!("no run {run}")));
                };
                self.engine.unpark(held);
                self.engine.load_network(net)?;
                self.engine.park_into(held);
                Ok(())
            }
            None => self.engine.load_run(run, net),
        }
    }

    fn previous_networks(&mut self) -> Result<Vec<Option<Network>>> {
        match &self.parked {
            Some(parked) => Self::each_parked(&mut self.engine, parked, |e| e.previous_network()),
            None => Ok(self
                .engine
                .previous_networks()?
                .into_iter()
                .map(Some)
                .collect()),
        }
    }

    fn preferred_round(&self) -> usize {
        self.engine.preferred_round()
    }

    fn passes_per_step(&self) -> usize {
        match &self.parked {
            Some(parked) => parked.len(),
            None => self.engine.passes_per_step(),
        }
    }
}

//! The CPU engine: gradient descent with either kernel (the choice between them), the
//! weights held on the host.

use super::fused::Fused;
use super::kernel::CpuKernel;
use super::reference::{self, Reference};
use crate::batches::BatchPlan;
use crate::data::{Dataset, Points};
use crate::descent::{Engine, EngineStop, Round, StepRecord, StepRule};
use crate::error::Result;
use crate::loss::{norm, Evaluation};
use crate::network::Network;
use crate::optimizer::OptimizerState;

/// Which CPU kernel to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CpuVariant {
    #[default]
    Fused,
    Reference,
}

impl CpuVariant {
    /// A fresh kernel of this kind.
    pub fn kernel(self) -> Box<dyn CpuKernel> {
        match self {
            CpuVariant::Fused => Box::new(Fused::default()),
            CpuVariant::Reference => Box::new(Reference),
        }
    }
}

/// One run's weights on the host, with what its steps carry: the one definition of a CPU
/// step, for a run alone, each run of a sweep, and a run over a share of the points.
pub(super) struct HostRun {
    pub(super) net: Network,
    /// The weights before the last update, restored when the next loss diverges.
    pub(super) previous: Option<Network>,
    /// What the update rule carries from step to step (kept when new weights are set, so
    /// that a checking engine follows the run it checks).
    pub(super) state: OptimizerState,
}

impl HostRun {
    pub(super) fn new(net: Network) -> Self {
        HostRun {
            net,
            previous: None,
            state: OptimizerState::default(),
        }
    }

    /// Step `step` of `rule`, given the evaluation at the current weights, recorded in
    /// `round`: the divergence check (going back to `previous`), the flat check, or the
    /// update. Whether the run goes on (a stop is the round's `stop`).
    pub(super) fn step(
        &mut self,
        evaluation: &Evaluation,
        rule: &StepRule,
        step: usize,
        round: &mut Round,
    ) -> Result<bool> {
        let loss = evaluation.loss(rule.loss);
        let gradient = evaluation.gradient(rule.loss);
        let gradient_norm = norm(&gradient);
        if !(loss.is_finite() && gradient_norm.is_finite()) || loss > rule.divergence_limit {
            if let Some(previous) = self.previous.take() {
                self.net = previous;
            }
            round.stop = Some(EngineStop::Diverged { step, loss });
            return Ok(false);
        }
        if gradient_norm < rule.tolerance {
            round.stop = Some(EngineStop::Flat {
                step,
                gradient_norm,
            });
            return Ok(false);
        }
        let mut params = self.net.params();
        rule.update
            .apply(&mut params, &gradient, rule.learning_rate, &mut self.state);
        self.previous = Some(self.net.clone());
        self.net.set_params(&params)?;
        round.records.push(StepRecord {
            step,
            loss,
            gradient_norm,
        });
        Ok(true)
    }

    /// New weights, with no update behind them to go back to.
    pub(super) fn set(&mut self, net: &Network) {
        self.net = net.clone();
        self.previous = None;
    }
}

/// The rounds of a sweep stepped on the host: `count` steps from `first_step` for every run
/// with a rule, until each has stopped. `step_active(step, active, rounds)` takes step `step`
/// of the runs `active`, recording into `rounds`, and returns those that go on.
pub(super) fn sweep_rounds(
    runs: usize,
    first_step: usize,
    count: usize,
    rules: &[Option<StepRule>],
    mut step_active: impl FnMut(usize, &[usize], &mut [Round]) -> Result<Vec<usize>>,
) -> Result<Vec<Round>> {
    let mut rounds = vec![Round::default(); runs];
    let mut active: Vec<usize> = (0..runs)
        .filter(|&r| rules.get(r).copied().flatten().is_some())
        .collect();
    for step in first_step..first_step + count {
        if active.is_empty() {
            break;
        }
        active = step_active(step, &active, &mut rounds)?;
    }
    Ok(rounds)
}

/// Gradient descent on the CPU.
pub struct CpuEngine<'a> {
    run: HostRun,
    data: &'a Points<'a>,
    kernel: Box<dyn CpuKernel>,
    /// With mini-batches: the plan and the batches of the epoch gathered last (boxed: an
    /// engine is moved about, and most have none).
    batches: Option<Box<HostBatches>>,
}

/// An epoch's batches gathered on the host.
pub(super) struct HostBatches {
    plan: BatchPlan,
    epoch: Option<usize>,
    batches: Vec<Dataset>,
}

impl HostBatches {
    /// The batches of `plan` over `data` (of its points), or `None` for a full batch.
    pub(super) fn of_plan(plan: BatchPlan, data: &Points) -> Result<Option<Self>> {
        plan.check_points(data.len())?;
        Ok((!plan.is_full()).then_some(HostBatches {
            plan,
            epoch: None,
            batches: Vec::new(),
        }))
    }

    /// The batch step `step` takes, gathering its epoch's batches first if they are not
    /// those gathered last.
    pub(super) fn of_step<'s>(
        &'s mut self,
        data: &'s Points<'s>,
        step: usize,
    ) -> Result<&'s Points<'s>> {
        let epoch = self.plan.epoch_of(step);
        if self.epoch != Some(epoch) {
            self.plan.gather(data, epoch, &mut self.batches)?;
            self.epoch = Some(epoch);
        }
        Ok(&self.batches[self.plan.batch_of(step)])
    }
}

impl<'a> CpuEngine<'a> {
    /// An engine training `net` on `data` with the given kernel.
    pub fn new(net: Network, data: &'a Points<'a>, variant: CpuVariant) -> Result<Self> {
        data.check_shape(net.inputs(), net.outputs(), "training data")?;
        if variant == CpuVariant::Reference {
            crate::limits::check_memory(
                &format!(
                    "the f64 reference kernel on {} points of {}",
                    data.len(),
                    net.describe()
                ),
                reference::memory_needed(&net, data.len()),
            )?;
        }
        let mut kernel = variant.kernel();
        kernel.prepare(&net);
        Ok(CpuEngine {
            run: HostRun::new(net),
            data,
            kernel,
            batches: None,
        })
    }

    /// An engine that takes one step per batch of `plan` (a full batch is plain descent);
    /// its evaluations are still over all of `data`.
    pub fn with_batches(
        net: Network,
        data: &'a Points<'a>,
        variant: CpuVariant,
        plan: BatchPlan,
    ) -> Result<Self> {
        let mut engine = Self::new(net, data, variant)?;
        engine.batches = HostBatches::of_plan(plan, data)?.map(Box::new);
        Ok(engine)
    }
}

impl Engine for CpuEngine<'_> {
    fn device(&self) -> String {
        format!(
            "cpu ({}, {} threads)",
            self.kernel.name(),
            rayon::current_num_threads()
        )
    }

    fn run_steps(&mut self, first_step: usize, count: usize, rule: &StepRule) -> Result<Round> {
        let mut round = Round::default();
        for step in first_step..first_step + count {
            let points = match &mut self.batches {
                Some(batches) => batches.of_step(self.data, step)?,
                None => self.data,
            };
            let evaluation = self.kernel.evaluate(&self.run.net, points);
            if !self.run.step(&evaluation, rule, step, &mut round)? {
                break;
            }
        }
        Ok(round)
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        Ok(self.kernel.evaluate(&self.run.net, self.data))
    }

    fn network(&mut self) -> Result<Network> {
        Ok(self.run.net.clone())
    }

    fn optimizer_state(&mut self) -> Result<OptimizerState> {
        Ok(self.run.state.clone())
    }

    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        self.run.state = state.clone();
        Ok(())
    }

    fn set_network(&mut self, net: &Network) -> Result<()> {
        if net.widths() != self.run.net.widths() {
            return Err(crate::error::Error::InvalidArgument(format!(
                "the engine trains {}, not {}",
                self.run.net.describe(),
                net.describe()
            )));
        }
        self.run.set(net);
        Ok(())
    }

    fn previous_network(&mut self) -> Result<Option<Network>> {
        Ok(self.run.previous.clone())
    }

    fn set_network_after(&mut self, net: &Network, previous: &Network) -> Result<()> {
        self.set_network(net)?;
        self.run.previous = Some(previous.clone());
        Ok(())
    }
}

//! Descent over one share of the points among several processes: any engine (the CPU's or a
//! GPU's) evaluates its share, the evaluation is summed with the other shares' (an MPI
//! all-reduce), and the step is taken here on the host, the same step on every process.
//!
//! The update is on the host, not on the engine's device, because only the summed gradient
//! gives the step: a GPU engine would otherwise need the sums written back before its own
//! update pass, and the host's update is the CPU path's, one definition for every process
//! whatever device it computes on.

use super::engine::{host_step, Stepped};
use crate::descent::{Engine, Round, ShareSum, StepRule};
use crate::error::Result;
use crate::loss::Evaluation;
use crate::network::Network;
use crate::optimizer::OptimizerState;

/// An engine over this process's share of the points, each evaluation summed over every
/// share before it is used.
pub struct SharedEngine<'a> {
    /// Evaluates the share; its weights are kept equal to `net`.
    share: Box<dyn Engine + 'a>,
    share_sum: ShareSum,
    net: Network,
    /// The weights before the last update, restored when the next loss diverges.
    previous: Option<Network>,
    state: OptimizerState,
}

impl<'a> SharedEngine<'a> {
    /// Descent with `share` evaluating this process's points and `share_sum` adding the
    /// other processes' evaluations.
    pub fn new(mut share: Box<dyn Engine + 'a>, share_sum: ShareSum) -> Result<Self> {
        let net = share.network()?;
        Ok(SharedEngine {
            share,
            share_sum,
            net,
            previous: None,
            state: OptimizerState::default(),
        })
    }
}

impl Engine for SharedEngine<'_> {
    fn device(&self) -> String {
        self.share.device()
    }

    fn run_steps(&mut self, first_step: usize, count: usize, rule: &StepRule) -> Result<Round> {
        let mut round = Round::default();
        for step in first_step..first_step + count {
            let evaluation = self.evaluate()?;
            let stepped = host_step(
                &mut self.net,
                &mut self.previous,
                &mut self.state,
                &evaluation,
                rule,
                step,
            );
            // Updated, or gone back to the weights before a divergence: the share's engine
            // evaluates whatever the host holds now.
            self.share.set_network(&self.net)?;
            match stepped? {
                Stepped::Updated(record) => round.records.push(record),
                Stepped::Stopped(stop) => {
                    round.stop = Some(stop);
                    break;
                }
            }
        }
        Ok(round)
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        let mut evaluation = self.share.evaluate()?;
        (self.share_sum)(&mut evaluation, &self.net)?;
        Ok(evaluation)
    }

    fn network(&mut self) -> Result<Network> {
        Ok(self.net.clone())
    }

    /// The default round on every process, whatever its engine prefers: the processes agree
    /// on stopping once a round, so their rounds must be as long.
    fn preferred_round(&self) -> usize {
        10
    }

    fn set_network(&mut self, net: &Network) -> Result<()> {
        self.share.set_network(net)?;
        self.net = net.clone();
        self.previous = None;
        Ok(())
    }

    fn previous_network(&mut self) -> Result<Option<Network>> {
        Ok(self.previous.clone())
    }

    fn set_network_after(&mut self, net: &Network, previous: &Network) -> Result<()> {
        self.set_network(net)?;
        self.previous = Some(previous.clone());
        Ok(())
    }

    fn optimizer_state(&mut self) -> Result<OptimizerState> {
        Ok(self.state.clone())
    }

    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        self.state = state.clone();
        Ok(())
    }
}

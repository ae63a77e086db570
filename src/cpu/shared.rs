//! Descent over one share of the points among several processes: any engine (the CPU's or a
//! GPU's, one run or a sweep of them) evaluates its share, the evaluations are summed with the
//! other shares' (an MPI all-reduce), and each step is taken here on the host, the same step
//! on every process.
//!
//! The update is on the host, not on the engine's device, because only the summed gradient
//! gives the step: a GPU engine would otherwise need the sums written back before its own
//! update pass, and the host's update is the CPU path's, one definition for every process
//! whatever device it computes on.

use super::engine::{sweep_rounds, HostRun};
use crate::descent::{Engine, Round, ShareSum, StepRule};
use crate::error::Result;
use crate::loss::Evaluation;
use crate::network::Network;
use crate::optimizer::OptimizerState;
use crate::sweep::SweepEngine;

/// The rounds agreed on: the processes agree on stopping once a round, so their rounds must
/// be as long whatever each engine prefers.
const ROUND: usize = 10;

/// An engine over this process's share of the points, each evaluation summed over every
/// share before it is used.
pub struct SharedEngine<'a> {
    /// Evaluates the share; its weights are kept equal to `run.net`.
    share: Box<dyn Engine + 'a>,
    share_sum: ShareSum,
    run: HostRun,
}

impl<'a> SharedEngine<'a> {
    /// Descent with `share` evaluating this process's points and `share_sum` adding the
    /// other processes' evaluations.
    pub fn new(mut share: Box<dyn Engine + 'a>, share_sum: ShareSum) -> Result<Self> {
        let net = share.network()?;
        Ok(SharedEngine {
            share,
            share_sum,
            run: HostRun::new(net),
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
            let going = self.run.step(&evaluation, rule, step, &mut round);
            // Updated, or gone back to the weights before a divergence: the share's engine
            // evaluates whatever the host holds now.
            self.share.set_network(&self.run.net)?;
            if !going? {
                break;
            }
        }
        Ok(round)
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        let mut evaluation = self.share.evaluate()?;
        (self.share_sum)(std::slice::from_mut(&mut evaluation), &[&self.run.net])?;
        Ok(evaluation)
    }

    fn network(&mut self) -> Result<Network> {
        Ok(self.run.net.clone())
    }

    fn preferred_round(&self) -> usize {
        ROUND
    }

    fn set_network(&mut self, net: &Network) -> Result<()> {
        self.share.set_network(net)?;
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

    fn optimizer_state(&mut self) -> Result<OptimizerState> {
        Ok(self.run.state.clone())
    }

    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        self.run.state = state.clone();
        Ok(())
    }
}

/// A sweep over this process's share of the points: one pass of the share's sweep engine
/// evaluates every run, one all-reduce sums every run's evaluation over the shares, and each
/// run steps on the host.
pub struct SharedSweep<'a> {
    /// Evaluates every run on the share; its weights are kept equal to `runs`'.
    share: Box<dyn SweepEngine + 'a>,
    share_sum: ShareSum,
    runs: Vec<HostRun>,
}

impl<'a> SharedSweep<'a> {
    /// A sweep with `share` evaluating this process's points and `share_sum` adding the other
    /// processes' evaluations.
    pub fn new(mut share: Box<dyn SweepEngine + 'a>, share_sum: ShareSum) -> Result<Self> {
        let runs = share.networks()?.into_iter().map(HostRun::new).collect();
        Ok(SharedSweep {
            share,
            share_sum,
            runs,
        })
    }
}

impl SweepEngine for SharedSweep<'_> {
    fn device(&self) -> String {
        self.share.device()
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
            // Every run is evaluated (stopped ones too): one pass reads the share for all.
            let evaluations = self.evaluate()?;
            let mut still = Vec::with_capacity(active.len());
            for &r in active {
                let rule = rules[r].as_ref().expect("active runs have a rule");
                let going = self.runs[r].step(&evaluations[r], rule, step, &mut rounds[r]);
                self.share.set_network(r, &self.runs[r].net)?;
                if going? {
                    still.push(r);
                }
            }
            Ok(still)
        })
    }

    fn evaluate(&mut self) -> Result<Vec<Evaluation>> {
        let mut evaluations = self.share.evaluate()?;
        let nets: Vec<&Network> = self.runs.iter().map(|r| &r.net).collect();
        (self.share_sum)(&mut evaluations, &nets)?;
        Ok(evaluations)
    }

    fn networks(&mut self) -> Result<Vec<Network>> {
        Ok(self.runs.iter().map(|r| r.net.clone()).collect())
    }

    fn set_network(&mut self, run: usize, net: &Network) -> Result<()> {
        self.share.set_network(run, net)?;
        self.runs[run].set(net);
        Ok(())
    }

    fn previous_networks(&mut self) -> Result<Vec<Option<Network>>> {
        Ok(self.runs.iter().map(|r| r.previous.clone()).collect())
    }

    fn preferred_round(&self) -> usize {
        ROUND
    }

    fn passes_per_step(&self) -> usize {
        self.share.passes_per_step()
    }
}

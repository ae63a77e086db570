//! `train --verify`: a training engine checked step by step against another path.
//!
//! [`Verified`] runs both engines in lockstep behind the [`Engine`] interface, so the descent
//! loop does not know it is being checked. Every round starts both from the checked engine's
//! weights; after it, [`Verified`] compares what both did: the number of steps, the loss and
//! the gradient norm of every step, why and where each stopped, and the weights each ended
//! with. [`Verified::report`] adds the final weights. The GPU path is checked
//! against the fused CPU kernel; the fused CPU kernel against the f64 reference kernel.
//!
//! Tolerance: the paths compute in f32 (the reference in f64) and sum in different orders, so
//! their losses differ by about 1e-6 relative at first and the difference grows slowly along
//! the trajectory: on lavapipe the default 170-step run ends 5e-7 apart in the loss and 3e-7 in
//! the weights. [`TOLERANCE`] (1e-4 relative) leaves two orders of magnitude of room for other
//! adapters and longer runs while still catching any real error in a kernel (a wrong term moves
//! the loss by far more).

use crate::descent::{Engine, EngineStop, Round, StepRule};
use crate::error::{Error, Result};
use crate::loss::Evaluation;
use crate::network::Network;
use crate::sweep::SweepEngine;

/// Largest relative deviation allowed between the paths.
pub const TOLERANCE: f64 = 1e-4;

/// Relative deviation of `a` from `b`, safe at zero.
pub fn relative(a: f64, b: f64) -> f64 {
    relative_above(a, b, 0.0)
}

/// Losses are compared relative to themselves, or to this share of the first step's loss once
/// they fall below it: a loss that tends to zero (data without noise, a single point) is a
/// difference of nearly equal f32 numbers, and its relative rounding grows without bound.
/// (In f32 a squared error `e^2` is known to about `2 eps |prediction| / |e|` relative: at a
/// ten-thousandth of the starting loss that is still 1e-5.)
pub const LOSS_FLOOR: f64 = 1e-4;

/// Gradient norms likewise, below a hundredth of the first step's norm.
pub const NORM_FLOOR: f64 = 1e-2;

/// Largest relative deviation allowed between the paths' gradient norms. Looser than the loss:
/// a point whose ReLU input is within rounding of zero is on in one path and off in the other,
/// which moves the gradient by that one point's term (of order 1/N of the whole), large next to
/// a norm that has nearly vanished. A wrong gradient still shows: in the weights each round
/// leaves (held to [`TOLERANCE`]) and in where the paths stop.
pub const NORM_TOLERANCE: f64 = 1e-1;

/// Relative deviation of `a` from `b`, measured against at least `floor`.
pub fn relative_above(a: f64, b: f64, floor: f64) -> f64 {
    if a == b {
        return 0.0;
    }
    (a - b).abs() / b.abs().max(a.abs()).max(floor).max(1e-30)
}

/// Largest deviation between two networks' weights, relative to `1 + |w|`.
pub fn weight_deviation(a: &Network, b: &Network) -> f64 {
    a.params()
        .iter()
        .zip(b.params())
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0, f64::max)
}

/// What a verified run found.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Steps compared.
    pub compared: usize,
    /// Largest relative deviation of a step's loss (and of the final loss).
    pub loss: f64,
    /// Largest relative deviation of a step's gradient norm.
    pub gradient_norm: f64,
    /// Largest deviation of the final weights.
    pub weights: f64,
    /// A disagreement that no tolerance covers: different step counts or stops.
    pub mismatch: Option<String>,
}

impl Report {
    /// Whether the two paths agreed.
    pub fn passed(&self) -> bool {
        self.mismatch.is_none()
            && self.loss <= TOLERANCE
            && self.gradient_norm <= NORM_TOLERANCE
            && self.weights <= TOLERANCE
    }

    /// The error for a failed verification, `None` when it passed.
    pub fn failure(&self) -> Option<Error> {
        if self.passed() {
            return None;
        }
        Some(Error::VerificationFailed(match &self.mismatch {
            Some(why) => why.clone(),
            None => format!(
                "the paths differ by {:.3e} (loss), {:.3e} (gradient norm) and {:.3e} \
                 (weights), more than {TOLERANCE:e} (gradient norm: {NORM_TOLERANCE:e})",
                self.loss, self.gradient_norm, self.weights
            ),
        }))
    }
}

/// What the comparison of two paths has found so far (one run's).
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    loss: f64,
    gradient_norm: f64,
    /// Largest deviation of the weights at the end of a round.
    weights: f64,
    compared: usize,
    /// The first step's gradient norm: the scale small norms are compared on.
    first_norm: Option<f64>,
    /// The first step's loss (and its kind): the scale losses near zero are compared on.
    first_loss: Option<(f64, crate::loss::LossKind)>,
    mismatch: Option<String>,
}

impl Comparison {
    /// What was found, with `final_weights` (the deviation of the weights the paths ended
    /// with) taken in.
    pub fn report(&self, final_weights: f64) -> Report {
        Report {
            compared: self.compared,
            loss: self.loss,
            gradient_norm: self.gradient_norm,
            weights: self.weights.max(final_weights),
            mismatch: self.mismatch.clone(),
        }
    }

    fn mismatch(&mut self, why: String) {
        self.mismatch.get_or_insert(why);
    }

    /// Compares one round of both paths, begun at the same weights: every step's loss and
    /// gradient norm, and where and why each stopped. `names` are the two paths' devices.
    pub fn round(&mut self, got: &Round, want: &Round, rule: &StepRule, names: (&str, &str)) {
        for (g, w) in got.records.iter().zip(&want.records) {
            let floor = LOSS_FLOOR * self.first_loss.get_or_insert((w.loss, rule.loss)).0;
            self.loss = self.loss.max(relative_above(g.loss, w.loss, floor));
            // A norm near zero is the difference of large sums, and its relative rounding
            // grows as it shrinks: below a share of the first norm, compare on that scale.
            let scale = NORM_FLOOR * *self.first_norm.get_or_insert(w.gradient_norm);
            self.gradient_norm =
                self.gradient_norm
                    .max(relative_above(g.gradient_norm, w.gradient_norm, scale));
            self.compared += 1;
        }
        self.stops(got, want, rule, names);
    }

    /// Takes in where a round left both paths' weights (both began at the same).
    pub fn weights(&mut self, checked: &Network, against: &Network) {
        self.weights = self.weights.max(weight_deviation(checked, against));
    }

    /// Takes in both paths' evaluations at the end.
    pub fn evaluation(&mut self, got: &Evaluation, want: &Evaluation) {
        self.loss = self.loss.max(match self.first_loss {
            Some((first, kind)) => {
                relative_above(got.loss(kind), want.loss(kind), LOSS_FLOOR * first)
            }
            None => relative(got.sse, want.sse),
        });
    }

    /// Compares the stops of one round. A flat stop one step apart is an agreement when the
    /// engine that went on had a gradient norm within the tolerance of the threshold (both
    /// paths are then at the rule's edge, and which side each lands on is rounding).
    fn stops(&mut self, got: &Round, want: &Round, rule: &StepRule, names: (&str, &str)) {
        let (gs, ws) = (got.stop, want.stop);
        let borderline = |round: &Round, step: usize| {
            round
                .records
                .iter()
                .find(|r| r.step == step)
                .is_some_and(|r| relative(r.gradient_norm, rule.tolerance) <= TOLERANCE)
        };
        let agree = match (gs, ws) {
            (None, None) => true,
            (Some(EngineStop::Flat { step: a, .. }), Some(EngineStop::Flat { step: b, .. })) => {
                a == b
            }
            (
                Some(EngineStop::Diverged { step: a, .. }),
                Some(EngineStop::Diverged { step: b, .. }),
            ) => a == b,
            (Some(EngineStop::Flat { step, .. }), None) => borderline(want, step),
            (None, Some(EngineStop::Flat { step, .. })) => borderline(got, step),
            _ => false,
        };
        if !agree {
            self.mismatch(format!(
                "the paths stopped differently: {} stopped {}, {} stopped {}",
                names.0,
                describe(gs),
                names.1,
                describe(ws)
            ));
        } else if gs == ws && got.records.len() != want.records.len() {
            self.mismatch(format!(
                "the paths recorded {} and {} steps in the same round",
                got.records.len(),
                want.records.len()
            ));
        }
    }
}

/// An engine checked against another.
pub struct Verified<'a> {
    pub checked: Box<dyn Engine + 'a>,
    /// The path `checked` is compared with.
    pub against: Box<dyn Engine + 'a>,
    found: Comparison,
}

impl<'a> Verified<'a> {
    /// Runs `checked` with `against` in lockstep.
    pub fn new(checked: Box<dyn Engine + 'a>, against: Box<dyn Engine + 'a>) -> Self {
        Verified {
            checked,
            against,
            found: Comparison::default(),
        }
    }

    /// What was found, with the final weights compared.
    pub fn report(&mut self) -> Result<Report> {
        let ended = weight_deviation(&self.checked.network()?, &self.against.network()?);
        Ok(self.found.report(ended))
    }
}

fn describe(stop: Option<EngineStop>) -> String {
    match stop {
        None => "not at all".into(),
        Some(EngineStop::Flat { step, .. }) => format!("flat at step {step}"),
        Some(EngineStop::Diverged { step, .. }) => format!("diverging at step {step}"),
    }
}

impl Engine for Verified<'_> {
    fn device(&self) -> String {
        format!(
            "{} verified against {}",
            self.checked.device(),
            self.against.device()
        )
    }

    fn run_steps(&mut self, first_step: usize, count: usize, rule: &StepRule) -> Result<Round> {
        // Every round starts both paths from the checked path's weights: what is verified is
        // each path's arithmetic, step by step. Left to run apart, two correct paths drift
        // along a chaotic trajectory (a ReLU switching, an oscillating descent) until they
        // disagree by far more than any rounding.
        let start = self.checked.network()?;
        match self.checked.previous_network()? {
            // And from its weights before the last update: a divergence at the round's first
            // step goes back to them on both paths.
            Some(previous) => self.against.set_network_after(&start, &previous)?,
            None => self.against.set_network(&start)?,
        }
        let got = self.checked.run_steps(first_step, count, rule)?;
        let want = self.against.run_steps(first_step, count, rule)?;
        let names = (self.checked.device(), self.against.device());
        self.found.round(&got, &want, rule, (&names.0, &names.1));
        // Both rounds began at the same weights: where they end says whether both updates
        // were the same.
        self.found
            .weights(&self.checked.network()?, &self.against.network()?);
        Ok(got)
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        let want = self.against.evaluate()?;
        let got = self.checked.evaluate()?;
        self.found.evaluation(&got, &want);
        Ok(got)
    }

    fn network(&mut self) -> Result<Network> {
        self.checked.network()
    }

    fn set_network(&mut self, net: &Network) -> Result<()> {
        self.checked.set_network(net)?;
        self.against.set_network(net)
    }

    fn previous_network(&mut self) -> Result<Option<Network>> {
        self.checked.previous_network()
    }

    fn set_network_after(&mut self, net: &Network, previous: &Network) -> Result<()> {
        self.checked.set_network_after(net, previous)?;
        self.against.set_network_after(net, previous)
    }

    fn optimizer_state(&mut self) -> Result<crate::optimizer::OptimizerState> {
        self.checked.optimizer_state()
    }

    fn set_optimizer_state(&mut self, state: &crate::optimizer::OptimizerState) -> Result<()> {
        self.checked.set_optimizer_state(state)?;
        self.against.set_optimizer_state(state)
    }

    fn preferred_round(&self) -> usize {
        self.checked.preferred_round()
    }
}

/// A sweep checked run by run against another path: each run's steps against the same run on
/// the checking path, every round begun from the checked run's weights (as [`Verified`]).
pub struct VerifiedSweep<'a> {
    checked: Box<dyn SweepEngine + 'a>,
    /// One engine per run on the checking path.
    against: Vec<Box<dyn Engine + 'a>>,
    found: Vec<Comparison>,
}

impl<'a> VerifiedSweep<'a> {
    /// Runs `checked` with one `against` engine per run in lockstep.
    pub fn new(
        checked: Box<dyn SweepEngine + 'a>,
        against: Vec<Box<dyn Engine + 'a>>,
    ) -> Result<Self> {
        if against.len() != checked.runs() {
            return Err(Error::InvalidArgument(format!(
                "{} checking engines for {} runs",
                against.len(),
                checked.runs()
            )));
        }
        let found = vec![Comparison::default(); against.len()];
        Ok(VerifiedSweep {
            checked,
            against,
            found,
        })
    }

    /// What was found for each run, with the final weights compared.
    pub fn reports(&mut self) -> Result<Vec<Report>> {
        let ended = self.checked.networks()?;
        self.against
            .iter_mut()
            .zip(&ended)
            .zip(&self.found)
            .map(|((against, net), found)| {
                Ok(found.report(weight_deviation(net, &against.network()?)))
            })
            .collect()
    }
}

impl SweepEngine for VerifiedSweep<'_> {
    fn device(&self) -> String {
        let against = self.against.first().map_or(String::new(), |e| e.device());
        format!("{} verified against {against}", self.checked.device())
    }

    fn runs(&self) -> usize {
        self.checked.runs()
    }

    fn run_steps(
        &mut self,
        first_step: usize,
        count: usize,
        rules: &[Option<StepRule>],
    ) -> Result<Vec<Round>> {
        let start = self.checked.networks()?;
        let previous = self.checked.previous_networks()?;
        let got = self.checked.run_steps(first_step, count, rules)?;
        let ended = self.checked.networks()?;
        let checked_name = self.checked.device();
        for (r, rule) in rules.iter().enumerate() {
            let Some(rule) = rule else { continue };
            let against = &mut self.against[r];
            match &previous[r] {
                Some(previous) => against.set_network_after(&start[r], previous)?,
                None => against.set_network(&start[r])?,
            }
            let want = against.run_steps(first_step, count, rule)?;
            let against_name = against.device();
            self.found[r].round(&got[r], &want, rule, (&checked_name, &against_name));
            self.found[r].weights(&ended[r], &against.network()?);
        }
        Ok(got)
    }

    fn evaluate(&mut self) -> Result<Vec<Evaluation>> {
        let got = self.checked.evaluate()?;
        for ((against, found), got) in self.against.iter_mut().zip(&mut self.found).zip(&got) {
            found.evaluation(got, &against.evaluate()?);
        }
        Ok(got)
    }

    fn networks(&mut self) -> Result<Vec<Network>> {
        self.checked.networks()
    }

    fn set_network(&mut self, run: usize, net: &Network) -> Result<()> {
        self.checked.set_network(run, net)?;
        match self.against.get_mut(run) {
            Some(against) => against.set_network(net),
            None => Err(Error::InvalidArgument(format!("no run {run}"))),
        }
    }

    fn previous_networks(&mut self) -> Result<Vec<Option<Network>>> {
        self.checked.previous_networks()
    }

    fn preferred_round(&self) -> usize {
        self.checked.preferred_round()
    }
}

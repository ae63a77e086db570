//! How a step turns the gradient into an update: the lesson's plain gradient descent, or the
//! rules every trainer is compared on, written exactly as PyTorch's `torch.optim.SGD`
//! (momentum, Nesterov momentum, weight decay, dampening 0) and `torch.optim.Adam`
//! (bias-corrected, weight decay added to the gradient), so that one can be checked against
//! the other. With `p` a parameter, `g` its gradient, `lr` the learning rate and `t` the
//! update's number (1 for the first):
//!
//! - every rule first adds the weight decay: `g = g + weight_decay * p`;
//! - `gd`: `p = p - lr * g`;
//! - `momentum` (and `nesterov`): `b = g` at `t = 1`, else `b = momentum * b + g`; then
//!   `p = p - lr * b` (Nesterov: `p = p - lr * (g + momentum * b)`);
//! - `adam`: `m = beta1 * m + (1 - beta1) * g`, `v = beta2 * v + (1 - beta2) * g^2`, and
//!   `p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)`.
//!
//! `lr` is the scheduled rate of update `t` ([`Schedule`]).

use std::fmt;

use crate::error::{number, Error, Result};

/// The update rule's kind and its constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// Plain gradient descent (the lesson's).
    Gd,
    /// Momentum, as `torch.optim.SGD(momentum=..., nesterov=...)`.
    Momentum { momentum: f64, nesterov: bool },
    /// Adam, as `torch.optim.Adam(betas=(beta1, beta2), eps=...)`.
    Adam { beta1: f64, beta2: f64, eps: f64 },
}

impl Optimizer {
    /// The name used on the command line: `gd`, `momentum`, `nesterov` or `adam`.
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Gd => "gd",
            Optimizer::Momentum {
                nesterov: false, ..
            } => "momentum",
            Optimizer::Momentum { nesterov: true, .. } => "nesterov",
            Optimizer::Adam { .. } => "adam",
        }
    }
}

/// How the learning rate changes from update to update (`t` is the update's number, 1 for
/// the first; the rate given is the first update's).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The same rate throughout.
    Constant,
    /// The rate times `factor` after every `every` updates: `lr * factor^floor((t - 1) / every)`.
    Step { every: u64, factor: f64 },
    /// The rate times `factor` at every update: `lr * factor^(t - 1)`.
    Exp { factor: f64 },
    /// Half a cosine from the rate down to 0 over `total` updates (PyTorch's
    /// `CosineAnnealingLR` with `eta_min = 0`): `lr * (1 + cos(pi (t - 1) / total)) / 2`.
    Cosine { total: u64 },
}

impl Schedule {
    /// The rate of update `t` (1-based) for a first rate of `lr`.
    pub fn rate(&self, lr: f64, t: u64) -> f64 {
        let done = t.saturating_sub(1);
        match *self {
            Schedule::Constant => lr,
            Schedule::Step { every, factor } => lr * factor.powf((done / every.max(1)) as f64),
            Schedule::Exp { factor } => lr * factor.powf(done as f64),
            Schedule::Cosine { total } => {
                let phase = std::f64::consts::PI * done as f64 / total.max(1) as f64;
                lr * 0.5 * (1.0 + phase.cos())
            }
        }
    }

    /// Checks the constants.
    pub fn validate(&self) -> Result<()> {
        let good = match *self {
            Schedule::Constant | Schedule::Cosine { .. } => true,
            Schedule::Step { every, factor } => every >= 1 && factor.is_finite() && factor > 0.0,
            Schedule::Exp { factor } => factor.is_finite() && factor > 0.0,
        };
        if good {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "--lr-schedule {self}: EVERY must be at least 1 and FACTOR a finite number > 0"
            )))
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Schedule::Constant => write!(f, "constant"),
            Schedule::Step { every, factor } => write!(f, "step:{every}:{}", number(factor)),
            Schedule::Exp { factor } => write!(f, "exp:{}", number(factor)),
            Schedule::Cosine { .. } => write!(f, "cosine"),
        }
    }
}

/// How each step updates the weights: the optimizer, the weight decay and the schedule of the
/// learning rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateRule {
    pub optimizer: Optimizer,
    /// Added to the gradient times the weight (PyTorch's `weight_decay`); 0 for none.
    pub weight_decay: f64,
    pub schedule: Schedule,
}

impl Default for UpdateRule {
    /// The lesson's plain gradient descent at a constant rate.
    fn default() -> Self {
        UpdateRule {
            optimizer: Optimizer::Gd,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
        }
    }
}

impl fmt::Display for UpdateRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.optimizer {
            Optimizer::Gd => write!(f, "gd")?,
            Optimizer::Momentum { momentum, nesterov } => write!(
                f,
                "{} {}",
                if nesterov { "nesterov" } else { "momentum" },
                number(momentum)
            )?,
            Optimizer::Adam { beta1, beta2, eps } => write!(
                f,
                "adam (betas {}, {}; eps {})",
                number(beta1),
                number(beta2),
                number(eps)
            )?,
        }
        if self.weight_decay != 0.0 {
            write!(f, ", weight decay {}", number(self.weight_decay))?;
        }
        if self.schedule != Schedule::Constant {
            write!(f, ", rate schedule {}", self.schedule)?;
        }
        Ok(())
    }
}

/// What a rule keeps between steps, per parameter: the momentum buffer (or Adam's first
/// moment) and Adam's second moment, and the updates made so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    /// Updates made (`t` of the last one).
    pub updates: u64,
    pub first: Vec<f64>,
    pub second: Vec<f64>,
}

impl UpdateRule {
    /// Checks the constants, naming the flag of the one out of range.
    pub fn validate(&self) -> Result<()> {
        let bad = |flag: &str, value: f64, range: &str| {
            Err(Error::InvalidArgument(format!(
                "{flag} must be {range} (got {})",
                number(value)
            )))
        };
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("--weight-decay", self.weight_decay, "a finite number >= 0");
        }
        self.schedule.validate()?;
        match self.optimizer {
            Optimizer::Gd => {}
            Optimizer::Momentum { momentum, .. } => {
                if !(momentum.is_finite() && momentum > 0.0) {
                    return bad("--momentum", momentum, "a finite number > 0");
                }
            }
            Optimizer::Adam { beta1, beta2, eps } => {
                if !(0.0..1.0).contains(&beta1) {
                    return bad("--beta1", beta1, "in [0, 1)");
                }
                if !(0.0..1.0).contains(&beta2) {
                    return bad("--beta2", beta2, "in [0, 1)");
                }
                if !(eps.is_finite() && eps > 0.0) {
                    return bad("--eps", eps, "a finite number > 0");
                }
            }
        }
        Ok(())
    }

    /// One update of `params` by `gradient` at (first) learning rate `lr`, `state` carried
    /// from the previous one (empty before the first).
    pub fn apply(&self, params: &mut [f64], gradient: &[f64], lr: f64, state: &mut OptimizerState) {
        let n = params.len();
        state.updates += 1;
        let lr = self.schedule.rate(lr, state.updates);
        let decayed = |k: usize, p: f64| {
            // Without weight decay the gradient as it is (0 * p would turn an infinite p's
            // update into NaN).
            if self.weight_decay == 0.0 {
                gradient[k]
            } else {
                gradient[k] + self.weight_decay * p
            }
        };
        match self.optimizer {
            Optimizer::Gd => {
                for (k, p) in params.iter_mut().enumerate() {
                    *p -= lr * decayed(k, *p);
                }
            }
            Optimizer::Momentum { momentum, nesterov } => {
                let first_update = state.first.len() != n;
                state.first.resize(n, 0.0);
                for (k, p) in params.iter_mut().enumerate() {
                    let g = decayed(k, *p);
                    let b = &mut state.first[k];
                    *b = if first_update { g } else { momentum * *b + g };
                    let step = if nesterov { g + momentum * *b } else { *b };
                    *p -= lr * step;
                }
            }
            Optimizer::Adam { beta1, beta2, eps } => {
                state.first.resize(n, 0.0);
                state.second.resize(n, 0.0);
                let t = state.updates as i32;
                let correction1 = 1.0 - beta1.powi(t);
                let correction2 = 1.0 - beta2.powi(t);
                let step_size = lr / correction1;
                for (k, p) in params.iter_mut().enumerate() {
                    let g = decayed(k, *p);
                    let (m, v) = (&mut state.first[k], &mut state.second[k]);
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    let denom = v.sqrt() / correction2.sqrt() + eps;
                    *p -= step_size * *m / denom;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain descent is the lesson's step, exactly.
    #[test]
    fn gd_is_the_lessons_step() {
        let mut p = vec![1.0, -2.0];
        UpdateRule::default().apply(&mut p, &[0.5, 0.25], 0.1, &mut OptimizerState::default());
        assert_eq!(p, vec![1.0 - 0.1 * 0.5, -2.0 - 0.1 * 0.25]);
    }

    #[test]
    fn schedules_follow_their_formulas() {
        let lr = 0.5;
        let step = Schedule::Step {
            every: 3,
            factor: 0.1,
        };
        let rates: Vec<f64> = (1..=7).map(|t| step.rate(lr, t)).collect();
        let want = [0.5, 0.5, 0.5, 0.05, 0.05, 0.05, 0.005];
        for (r, w) in rates.iter().zip(want) {
            assert!((r - w).abs() <= 1e-15, "{rates:?}");
        }
        assert_eq!(Schedule::Exp { factor: 0.5 }.rate(lr, 3), 0.125);
        let cosine = Schedule::Cosine { total: 4 };
        assert_eq!(cosine.rate(lr, 1), 0.5);
        assert!((cosine.rate(lr, 3) - 0.25).abs() < 1e-15);
        assert_eq!(Schedule::Constant.rate(lr, 1000), lr);
    }

    #[test]
    fn out_of_range_constants_are_refused_by_flag() {
        let rule = |optimizer| UpdateRule {
            optimizer,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
        };
        let cases = [
            (
                rule(Optimizer::Momentum {
                    momentum: -0.1,
                    nesterov: false,
                }),
                "--momentum",
            ),
            (
                rule(Optimizer::Adam {
                    beta1: 1.0,
                    beta2: 0.999,
                    eps: 1e-8,
                }),
                "--beta1",
            ),
            (
                rule(Optimizer::Adam {
                    beta1: 0.9,
                    beta2: -0.5,
                    eps: 1e-8,
                }),
                "--beta2",
            ),
            (
                rule(Optimizer::Adam {
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 0.0,
                }),
                "--eps",
            ),
            (
                UpdateRule {
                    optimizer: Optimizer::Gd,
                    weight_decay: -1.0,
                    schedule: Schedule::Constant,
                },
                "--weight-decay",
            ),
        ];
        for (rule, flag) in cases {
            let e = rule.validate().unwrap_err().to_string();
            assert!(e.contains(flag), "{e}");
        }
    }
}

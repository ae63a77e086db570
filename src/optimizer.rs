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

/// How each step updates the weights: the optimizer and the weight decay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateRule {
    pub optimizer: Optimizer,
    /// Added to the gradient times the weight (PyTorch's `weight_decay`); 0 for none.
    pub weight_decay: f64,
}

impl Default for UpdateRule {
    /// The lesson's plain gradient descent.
    fn default() -> Self {
        UpdateRule {
            optimizer: Optimizer::Gd,
            weight_decay: 0.0,
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

    /// One update of `params` by `gradient` at learning rate `lr`, `state` carried from the
    /// previous one (empty before the first).
    pub fn apply(&self, params: &mut [f64], gradient: &[f64], lr: f64, state: &mut OptimizerState) {
        let n = params.len();
        state.updates += 1;
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
    fn out_of_range_constants_are_refused_by_flag() {
        let rule = |optimizer| UpdateRule {
            optimizer,
            weight_decay: 0.0,
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

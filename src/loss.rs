//! The squared-error loss: what one evaluation over the data yields, and the MSE/SSE choice.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Which loss descent minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LossKind {
    /// Mean squared error: `SSE / (points * outputs)`.
    #[default]
    Mse,
    /// Total (sum of) squared error.
    Sse,
}

impl LossKind {
    /// The factor that turns the SSE (and its gradient) into this loss.
    pub fn scale(self, points: usize, outputs: usize) -> f64 {
        match self {
            LossKind::Mse => 1.0 / (points as f64 * outputs as f64),
            LossKind::Sse => 1.0,
        }
    }

    /// The name used on the command line and in output.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::Mse => "mse",
            LossKind::Sse => "sse",
        }
    }
}

impl fmt::Display for LossKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LossKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "mse" => Ok(LossKind::Mse),
            "sse" => Ok(LossKind::Sse),
            other => Err(Error::InvalidArgument(format!(
                "unknown loss '{other}' (expected 'mse' or 'sse')"
            ))),
        }
    }
}

/// The squared error over a dataset and its gradient with respect to every parameter (in the
/// network's flat layout), at one set of weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub points: usize,
    pub outputs: usize,
    /// `sum_i sum_k (pred_ik - y_ik)^2`.
    pub sse: f64,
    /// Gradient of the SSE.
    pub sse_gradient: Vec<f64>,
}

impl Evaluation {
    /// Mean squared error.
    pub fn mse(&self) -> f64 {
        self.loss(LossKind::Mse)
    }

    /// The chosen loss.
    pub fn loss(&self, kind: LossKind) -> f64 {
        self.sse * kind.scale(self.points, self.outputs)
    }

    /// The gradient of the chosen loss.
    pub fn gradient(&self, kind: LossKind) -> Vec<f64> {
        let s = kind.scale(self.points, self.outputs);
        self.sse_gradient.iter().map(|g| g * s).collect()
    }
}

/// Euclidean norm.
pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

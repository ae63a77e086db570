//! The CPU engine: gradient descent with either kernel (the choice between them), the
//! weights held on the host.

use super::fused::Fused;
use super::kernel::CpuKernel;
use super::reference::{self, Reference};
use crate::data::Dataset;
use crate::descent::{Engine, EngineStop, Round, StepRecord, StepRule};
use crate::error::Result;
use crate::loss::{norm, Evaluation};
use crate::network::Network;

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

/// Gradient descent on the CPU.
pub struct CpuEngine<'a> {
    net: Network,
    /// The weights before the last update, restored when the next loss diverges.
    previous: Option<Network>,
    data: &'a Dataset,
    kernel: Box<dyn CpuKernel>,
}

impl<'a> CpuEngine<'a> {
    /// An engine training `net` on `data` with the given kernel.
    pub fn new(net: Network, data: &'a Dataset, variant: CpuVariant) -> Result<Self> {
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
            net,
            previous: None,
            data,
            kernel,
        })
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
            let evaluation = self.kernel.evaluate(&self.net, self.data);
            let loss = evaluation.loss(rule.loss);
            let gradient = evaluation.gradient(rule.loss);
            let gradient_norm = norm(&gradient);
            if !(loss.is_finite() && gradient_norm.is_finite()) || loss > rule.divergence_limit {
                if let Some(previous) = self.previous.take() {
                    self.net = previous;
                }
                round.stop = Some(EngineStop::Diverged { step, loss });
                break;
            }
            if gradient_norm < rule.tolerance {
                round.stop = Some(EngineStop::Flat {
                    step,
                    gradient_norm,
                });
                break;
            }
            round.records.push(StepRecord {
                step,
                loss,
                gradient_norm,
            });
            let mut params = self.net.params();
            for (p, g) in params.iter_mut().zip(&gradient) {
                *p -= rule.learning_rate * g;
            }
            self.previous = Some(self.net.clone());
            self.net.set_params(&params)?;
        }
        Ok(round)
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        Ok(self.kernel.evaluate(&self.net, self.data))
    }

    fn network(&mut self) -> Result<Network> {
        Ok(self.net.clone())
    }

    fn set_network(&mut self, net: &Network) -> Result<()> {
        if net.widths() != self.net.widths() {
            return Err(crate::error::Error::InvalidArgument(format!(
                "the engine trains {}, not {}",
                self.net.describe(),
                net.describe()
            )));
        }
        self.net = net.clone();
        self.previous = None;
        Ok(())
    }
}

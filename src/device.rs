//! Choosing where the math runs: `auto`, `cpu` or `gpu`.

use std::fmt;
use std::str::FromStr;

use ndarray::{Array2, ArrayView2};

use crate::cpu::{CpuEngine, CpuKernel, CpuVariant, Fused};
use crate::data::Dataset;
use crate::descent::Engine;
use crate::error::{Error, Result};
use crate::loss::Evaluation;
use crate::network::Network;

/// The `--device` choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// A hardware GPU adapter if there is one, the CPU path otherwise.
    #[default]
    Auto,
    /// The fused CPU path.
    Cpu,
    /// Any GPU adapter, software ones included; an error when there is none.
    Gpu,
}

impl FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "gpu" => Ok(DeviceChoice::Gpu),
            other => Err(Error::InvalidArgument(format!(
                "unknown device '{other}' (expected auto, cpu or gpu)"
            ))),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Gpu => "gpu",
        })
    }
}

/// The error for `--device gpu` in a build without the GPU path.
fn gpu_unavailable() -> Error {
    Error::DeviceUnavailable(
        "--device gpu: this build of downhill has no GPU path yet; use --device cpu (or auto)"
            .into(),
    )
}

/// Opens a training engine on the chosen device.
pub fn open_engine<'a>(
    choice: DeviceChoice,
    net: Network,
    data: &'a Dataset,
) -> Result<Box<dyn Engine + 'a>> {
    match choice {
        DeviceChoice::Auto | DeviceChoice::Cpu => {
            Ok(Box::new(CpuEngine::new(net, data, CpuVariant::Fused)?))
        }
        DeviceChoice::Gpu => Err(gpu_unavailable()),
    }
}

/// The SSE and its gradient of `net` over `data`, on the chosen device.
pub fn evaluate(choice: DeviceChoice, net: &Network, data: &Dataset) -> Result<Evaluation> {
    data.check_shape(net.inputs(), net.outputs(), "evaluation data")?;
    match choice {
        DeviceChoice::Auto | DeviceChoice::Cpu => Ok(Fused::default().evaluate(net, data)),
        DeviceChoice::Gpu => Err(gpu_unavailable()),
    }
}

/// Predictions for inputs given column by column, on the chosen device.
pub fn predict(
    choice: DeviceChoice,
    net: &Network,
    inputs: ArrayView2<f32>,
) -> Result<Array2<f32>> {
    match choice {
        DeviceChoice::Auto | DeviceChoice::Cpu => Ok(Fused::default().predict(net, inputs)),
        DeviceChoice::Gpu => Err(gpu_unavailable()),
    }
}

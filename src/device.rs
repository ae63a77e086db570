//! Choosing where the math runs: `auto`, `cpu` or `gpu`.

use std::fmt;
use std::str::FromStr;

use ndarray::{Array2, ArrayView2};

use crate::cpu::{CpuEngine, CpuKernel, CpuVariant, Fused};
use crate::data::Dataset;
use crate::descent::Engine;
use crate::error::{Error, Result};
use crate::gpu::{engine as gpu_engine, AdapterChoice, GpuContext, GpuEngine, GpuOptions};
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

/// The error for `--device gpu` on a machine without any adapter.
fn no_adapter() -> Error {
    Error::DeviceUnavailable(
        "--device gpu: no GPU adapter was found. Install a Vulkan driver for your GPU, or on \
         Linux Mesa's software Vulkan driver (Debian/Ubuntu: apt-get install \
         mesa-vulkan-drivers libvulkan1), or use --device cpu"
            .into(),
    )
}

/// The GPU context for `choice`: `Ok(None)` means use the CPU.
fn context_for(choice: DeviceChoice) -> Result<Option<GpuContext>> {
    match choice {
        DeviceChoice::Cpu => Ok(None),
        DeviceChoice::Gpu => GpuContext::open(AdapterChoice::Any)?
            .map(Some)
            .ok_or_else(no_adapter),
        DeviceChoice::Auto => match GpuContext::open(AdapterChoice::HardwareOnly) {
            Ok(ctx) => Ok(ctx),
            Err(e) => {
                log::warn!("{e}; using the CPU path");
                Ok(None)
            }
        },
    }
}

/// A device choice resolved once: the GPU context, when the GPU path is used, opened a single
/// time for any number of evaluations (the landscape makes many).
pub struct Target {
    choice: DeviceChoice,
    ctx: Option<GpuContext>,
}

impl Target {
    /// Opens what `choice` asks for (`auto` without a hardware adapter: the CPU).
    pub fn resolve(choice: DeviceChoice) -> Result<Self> {
        Ok(Target {
            choice,
            ctx: context_for(choice)?,
        })
    }

    /// Whether the GPU path is used.
    pub fn is_gpu(&self) -> bool {
        self.ctx.is_some()
    }

    /// A training engine on this device: the GPU engine, or the fused CPU engine (`cpu`, or
    /// `auto` with a network or run the GPU cannot take: then with a warning).
    pub fn engine<'a>(
        &self,
        net: Network,
        data: &'a Dataset,
        options: GpuOptions,
    ) -> Result<OpenEngine<'a>> {
        if let Some(ctx) = &self.ctx {
            match GpuEngine::new(ctx.clone(), net.clone(), data, options) {
                Ok(engine) => return Ok(OpenEngine::Gpu(Box::new(engine))),
                // Under auto, a network the kernels cannot take or a run the card has no
                // memory for falls back to the CPU, as a user would want; asked for the GPU,
                // it is an error.
                Err(Error::Unsupported(why) | Error::Gpu(why))
                    if self.choice == DeviceChoice::Auto =>
                {
                    log::warn!("{why}; using the CPU path");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(OpenEngine::Cpu(CpuEngine::new(
            net,
            data,
            CpuVariant::Fused,
        )?))
    }

    /// `cpu` or `gpu (adapter name)`.
    pub fn name(&self) -> String {
        match &self.ctx {
            Some(ctx) => format!("gpu ({})", ctx.adapter.name),
            None => "cpu".into(),
        }
    }

    /// The SSE and its gradient of `net` over `data`.
    pub fn evaluate(&self, net: &Network, data: &Dataset) -> Result<Evaluation> {
        self.evaluator(net, data)?.evaluate(net)
    }

    /// An evaluator of the SSE and its gradient over `data` for any weights of `net`'s shape,
    /// set up once (on the GPU: the data uploaded and the kernels built) for any number of
    /// evaluations. Under `auto`, a shape the GPU cannot take is evaluated on the CPU.
    pub fn evaluator<'a>(&self, net: &Network, data: &'a Dataset) -> Result<Evaluator<'a>> {
        data.check_shape(net.inputs(), net.outputs(), "evaluation data")?;
        Ok(
            match self.engine(net.clone(), data, GpuOptions::default())? {
                OpenEngine::Gpu(engine) => Evaluator::Gpu(engine),
                OpenEngine::Cpu(_) => Evaluator::Cpu(data, Fused::default()),
            },
        )
    }

    /// Predictions for inputs given column by column, on this device.
    pub fn predict(&self, net: &Network, inputs: ArrayView2<f32>) -> Result<Array2<f32>> {
        if let Some(ctx) = &self.ctx {
            match gpu_engine::predict(ctx, net, inputs, GpuOptions::default()) {
                Err(Error::Unsupported(why)) if self.choice == DeviceChoice::Auto => {
                    log::warn!("{why}; using the CPU path");
                }
                other => return other,
            }
        }
        Ok(Fused::default().predict(net, inputs))
    }

    /// The SSE of each of `nets` (all of one shape) over `data`: the loss landscape's grid.
    pub fn sse_of_many(&self, nets: &[Network], data: &Dataset) -> Result<Vec<f64>> {
        match nets.first() {
            Some(first) => self.sse_of_many_evaluator(first, data)?.sse(nets),
            None => Ok(Vec::new()),
        }
    }

    /// An evaluator of many parameter vectors of `net`'s shape over `data`, set up once (on
    /// the GPU: the data uploaded and the kernel built) for any number of batches. Under
    /// `auto`, a shape the GPU kernels cannot take runs on the CPU.
    pub fn sse_of_many_evaluator<'a>(
        &self,
        net: &Network,
        data: &'a Dataset,
    ) -> Result<SseOfMany<'a>> {
        data.check_shape(net.inputs(), net.outputs(), "landscape data")?;
        if let Some(ctx) = &self.ctx {
            match crate::gpu::landscape::SseOfMany::new(ctx, net, data, GpuOptions::default()) {
                Ok(gpu) => return Ok(SseOfMany::Gpu(Box::new(gpu))),
                Err(Error::Unsupported(why)) if self.choice == DeviceChoice::Auto => {
                    log::warn!("{why}; using the CPU path");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(SseOfMany::Cpu(data))
    }
}

/// See [`Target::evaluator`].
pub enum Evaluator<'a> {
    Cpu(&'a Dataset, Fused),
    Gpu(Box<GpuEngine>),
}

impl Evaluator<'_> {
    /// The SSE and its gradient at `net`'s weights (of the shape the evaluator was made for).
    pub fn evaluate(&mut self, net: &Network) -> Result<Evaluation> {
        match self {
            Evaluator::Cpu(data, kernel) => Ok(kernel.evaluate(net, data)),
            Evaluator::Gpu(engine) => {
                engine.set_network(net)?;
                engine.evaluate()
            }
        }
    }
}

/// A training engine as [`Target::engine`] opened it.
pub enum OpenEngine<'a> {
    /// The GPU engine: it holds its own copy of the data.
    Gpu(Box<GpuEngine>),
    /// The fused CPU engine, reading the caller's data.
    Cpu(CpuEngine<'a>),
}

impl<'a> OpenEngine<'a> {
    /// The engine behind the common interface.
    pub fn boxed(self) -> Box<dyn Engine + 'a> {
        match self {
            OpenEngine::Gpu(engine) => engine,
            OpenEngine::Cpu(engine) => Box::new(engine),
        }
    }
}

/// See [`Target::sse_of_many_evaluator`].
pub enum SseOfMany<'a> {
    Cpu(&'a Dataset),
    Gpu(Box<crate::gpu::landscape::SseOfMany>),
}

impl SseOfMany<'_> {
    /// The SSE of each of `nets` over the data.
    pub fn sse(&self, nets: &[Network]) -> Result<Vec<f64>> {
        match self {
            SseOfMany::Cpu(data) => Ok(crate::cpu::sse_of_many(nets, data)),
            SseOfMany::Gpu(gpu) => gpu.sse(nets),
        }
    }
}

/// The SSE and its gradient of `net` over `data`, on the chosen device.
pub fn evaluate(choice: DeviceChoice, net: &Network, data: &Dataset) -> Result<Evaluation> {
    Target::resolve(choice)?.evaluate(net, data)
}

/// Predictions for inputs given column by column, on the chosen device.
pub fn predict(
    choice: DeviceChoice,
    net: &Network,
    inputs: ArrayView2<f32>,
) -> Result<Array2<f32>> {
    Target::resolve(choice)?.predict(net, inputs)
}

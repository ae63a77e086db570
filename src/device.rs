//! Choosing where the math runs: `auto`, `cpu` or `gpu`. [`Target`] is the one door to
//! compute: training engines, evaluations, predictions, the landscape's many-weights evaluator
//! and the read-once floor all come from it, on the GPU or the CPU, for every command (`bench`
//! and `--verify` included). Built without the `gpu` feature, `gpu` is an error and `auto` is
//! the CPU.

use std::fmt;
use std::str::FromStr;

use ndarray::{Array2, ArrayView2};

use std::time::Instant;

use crate::batches::BatchPlan;
use crate::cpu::{probe, CpuEngine, CpuKernel, CpuSweep, CpuVariant};
use crate::data::Points;
use crate::descent::Engine;
use crate::error::{Error, Result};
#[cfg(feature = "gpu")]
use crate::gpu::{
    engine as gpu_engine, probe::ReadOnce, AdapterChoice, GpuContext, GpuEngine, GpuOptions,
    GpuSweep,
};
use crate::loss::Evaluation;
use crate::network::Network;
use crate::sweep::SweepEngine;

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
#[cfg(feature = "gpu")]
fn no_adapter() -> Error {
    Error::DeviceUnavailable(
        "--device gpu: no GPU adapter was found. Install a Vulkan driver for your GPU, or on \
         Linux Mesa's software Vulkan driver (Debian/Ubuntu: apt-get install \
         mesa-vulkan-drivers libvulkan1), or use --device cpu"
            .into(),
    )
}

/// The GPU context for `choice`, on the adapter at `index` among those it takes: `Ok(None)`
/// means use the CPU.
#[cfg(feature = "gpu")]
fn context_for(choice: DeviceChoice, index: usize) -> Result<Option<GpuContext>> {
    match choice {
        DeviceChoice::Cpu => Ok(None),
        DeviceChoice::Gpu => GpuContext::open_among(AdapterChoice::Any, index)?
            .map(Some)
            .ok_or_else(no_adapter),
        DeviceChoice::Auto => match GpuContext::open_among(AdapterChoice::HardwareOnly, index) {
            Ok(ctx) => Ok(ctx),
            Err(e) => {
                log::warn!("{e}; using the CPU path");
                Ok(None)
            }
        },
    }
}

/// A device choice resolved once: the GPU context, when the GPU path is used, opened a single
/// time for any number of engines and evaluations (the landscape makes many).
pub struct Target {
    /// Read by the GPU path's fallback under `auto`.
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))]
    choice: DeviceChoice,
    #[cfg(feature = "gpu")]
    ctx: Option<GpuContext>,
    /// The CPU path's kernel: the fused one, or the f64 reference for checks and benchmarks.
    cpu_kernel: CpuVariant,
}

impl Target {
    /// Opens what `choice` asks for (`auto` without a hardware adapter: the CPU).
    pub fn resolve(choice: DeviceChoice) -> Result<Self> {
        Self::resolve_among(choice, 0)
    }

    /// As [`Target::resolve`], with the GPU adapter at `index` (counted round) among those
    /// `choice` takes: process `r` of a data-parallel run takes adapter `r` modulo their count.
    pub fn resolve_among(choice: DeviceChoice, index: usize) -> Result<Self> {
        #[cfg(not(feature = "gpu"))]
        let _ = index;
        #[cfg(not(feature = "gpu"))]
        if choice == DeviceChoice::Gpu {
            return Err(Error::DeviceUnavailable(
                "--device gpu: this build of downhill has no GPU path (built without the `gpu` \
                 feature); use --device cpu"
                    .into(),
            ));
        }
        Ok(Target {
            choice,
            #[cfg(feature = "gpu")]
            ctx: context_for(choice, index)?,
            cpu_kernel: CpuVariant::Fused,
        })
    }

    /// The CPU path with `kernel`.
    pub fn cpu(kernel: CpuVariant) -> Self {
        Target {
            choice: DeviceChoice::Cpu,
            #[cfg(feature = "gpu")]
            ctx: None,
            cpu_kernel: kernel,
        }
    }

    /// Any GPU adapter, a software one included, with no fallback to the CPU (what `bench`
    /// measures): `Ok(None)` when there is none, or an error if `required`.
    pub fn any_gpu(required: bool) -> Result<Option<Self>> {
        #[cfg(feature = "gpu")]
        {
            let target = |ctx| Target {
                choice: DeviceChoice::Gpu,
                ctx: Some(ctx),
                cpu_kernel: CpuVariant::Fused,
            };
            match GpuContext::open(AdapterChoice::Any)? {
                Some(ctx) => Ok(Some(target(ctx))),
                None if required => Err(no_adapter()),
                None => Ok(None),
            }
        }
        #[cfg(not(feature = "gpu"))]
        if required {
            Target::resolve(DeviceChoice::Gpu).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Whether the GPU path is used.
    pub fn is_gpu(&self) -> bool {
        #[cfg(feature = "gpu")]
        return self.ctx.is_some();
        #[cfg(not(feature = "gpu"))]
        false
    }

    /// `cpu` or `gpu (adapter name)`.
    pub fn name(&self) -> String {
        match self.adapter() {
            Some(adapter) => format!("gpu ({adapter})"),
            None => "cpu".into(),
        }
    }

    /// The GPU adapter's name, on the GPU path.
    pub fn adapter(&self) -> Option<String> {
        #[cfg(feature = "gpu")]
        if let Some(ctx) = &self.ctx {
            return Some(ctx.adapter.name.clone());
        }
        None
    }

    /// This device's f32 arithmetic peak in flop/s, measured (independent multiply-add chains
    /// on every CPU thread, or on many GPU threads).
    pub fn fma_peak(&self) -> Result<f64> {
        #[cfg(feature = "gpu")]
        if let Some(ctx) = &self.ctx {
            return crate::gpu::probe::fma_peak(ctx);
        }
        Ok(probe::fma_peak())
    }

    /// Seconds this device needs just to read `data` once, the least any training step
    /// costs: the median of `repeats` timings on the GPU (its read-only kernel, the data
    /// chunked as for training), the best of them on the CPU (a parallel read-only pass).
    pub fn read_once_seconds(&self, data: &Points, repeats: usize) -> Result<f64> {
        #[cfg(feature = "gpu")]
        if let Some(ctx) = &self.ctx {
            let probe = ReadOnce::new(ctx.clone(), data, GpuOptions::default())?;
            probe.time_pass(1)?; // warm-up
            let mut times = (0..repeats.max(1))
                .map(|_| probe.time_pass(8).map(|d| d.as_secs_f64()))
                .collect::<Result<Vec<_>>>()?;
            times.sort_by(f64::total_cmp);
            return Ok(times[times.len() / 2]);
        }
        Ok((0..repeats.max(1))
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(probe::read_once(data));
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min))
    }

    /// Under `auto`, whether `error` from the GPU path sends the work to the CPU (a shape or
    /// size the GPU cannot take, or a GPU failure while setting up); said with a warning.
    #[cfg(feature = "gpu")]
    fn falls_back(&self, error: &Error) -> bool {
        let fallback = self.choice == DeviceChoice::Auto
            && matches!(error, Error::Unsupported(_) | Error::Gpu(_));
        if fallback {
            log::warn!("{error}; using the CPU path");
        }
        fallback
    }

    /// A training engine on this device: the GPU engine, or the fused CPU engine (`cpu`, or
    /// `auto` with a network or run the GPU cannot take: then with a warning).
    pub fn engine<'a>(&self, net: Network, data: &'a Points<'a>) -> Result<OpenEngine<'a>> {
        #[cfg(feature = "gpu")]
        if let Some(ctx) = &self.ctx {
            match GpuEngine::new(ctx.clone(), net.clone(), data, GpuOptions::default()) {
                Ok(engine) => return Ok(OpenEngine::Gpu(Box::new(engine))),
                Err(e) if self.falls_back(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(OpenEngine::Cpu(CpuEngine::new(net, data, self.cpu_kernel)?))
    }

    /// A training engine that takes one step per batch of `plan` (a full batch is plain
    /// descent, as [`Target::engine`]): on the GPU the batches are gathered on the device.
    pub fn batch_engine<'a>(
        &self,
        net: Network,
        data: &'a Points<'a>,
        plan: BatchPlan,
    ) -> Result<OpenEngine<'a>> {
        #[cfg(feature = "gpu")]
        if let Some(ctx) = &self.ctx {
            let opened = GpuEngine::with_batches(
                ctx.clone(),
                net.clone(),
                data,
                GpuOptions::default(),
                plan,
            );
            match opened {
                Ok(engine) => return Ok(OpenEngine::Gpu(Box::new(engine))),
                Err(e) if self.falls_back(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(OpenEngine::Cpu(CpuEngine::with_batches(
            net,
            data,
            self.cpu_kernel,
            plan,
        )?))
    }

    /// A sweep engine for the runs `nets` (one shape) on this device: on the CPU every run
    /// from one pass over the data; on the GPU the data uploaded once and each run stepped in
    /// turn.
    pub fn sweep_engine<'a>(
        &self,
        nets: Vec<Network>,
        data: &'a Points<'a>,
    ) -> Result<OpenSweep<'a>> {
        self.batch_sweep_engine(nets, data, None)
    }

    /// [`Target::sweep_engine`] taking one batch of `plan` per step, the same batch for
    /// every run (`None`: full batches).
    pub fn batch_sweep_engine<'a>(
        &self,
        nets: Vec<Network>,
        data: &'a Points<'a>,
        plan: Option<BatchPlan>,
    ) -> Result<OpenSweep<'a>> {
        #[cfg(feature = "gpu")]
        if let (Some(ctx), false) = (&self.ctx, nets.is_empty()) {
            let options = GpuOptions::default();
            let opened = match plan {
                Some(plan) => GpuSweep::with_batches(ctx.clone(), &nets, data, options, plan),
                None => GpuSweep::new(ctx.clone(), &nets, data, options),
            };
            match opened {
                Ok(sweep) => return Ok(OpenSweep::Gpu(Box::new(sweep))),
                Err(e) if self.falls_back(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(OpenSweep::Cpu(match plan {
            Some(plan) => CpuSweep::with_batches(nets, data, self.cpu_kernel, plan)?,
            None => CpuSweep::new(nets, data, self.cpu_kernel)?,
        }))
    }

    /// The SSE and its gradient of `net` over `data`.
    pub fn evaluate(&self, net: &Network, data: &Points) -> Result<Evaluation> {
        self.evaluator(net, data)?.evaluate(net)
    }

    /// An evaluator of the SSE and its gradient over `data` for any weights of `net`'s shape,
    /// set up once (on the GPU: the data uploaded and the kernels built) for any number of
    /// evaluations. Under `auto`, a shape the GPU cannot take is evaluated on the CPU.
    pub fn evaluator<'a>(&self, net: &Network, data: &'a Points<'a>) -> Result<Evaluator<'a>> {
        data.check_shape(net.inputs(), net.outputs(), "evaluation data")?;
        Ok(match self.engine(net.clone(), data)? {
            #[cfg(feature = "gpu")]
            OpenEngine::Gpu(engine) => Evaluator::Gpu(engine),
            OpenEngine::Cpu(_) => Evaluator::Cpu(data, self.cpu_kernel.kernel()),
        })
    }

    /// Predictions for inputs given column by column, on this device.
    pub fn predict(&self, net: &Network, inputs: ArrayView2<f32>) -> Result<Array2<f32>> {
        #[cfg(feature = "gpu")]
        if let Some(ctx) = &self.ctx {
            match gpu_engine::predict(ctx, net, inputs, GpuOptions::default()) {
                Err(e) if self.falls_back(&e) => {}
                other => return other,
            }
        }
        Ok(self.cpu_kernel.kernel().predict(net, inputs))
    }

    /// The SSE of each of `nets` (all of one shape) over `data`: the loss landscape's grid.
    pub fn sse_of_many(&self, nets: &[Network], data: &Points) -> Result<Vec<f64>> {
        match nets.first() {
            Some(first) => self.sse_of_many_evaluator(first, data)?.sse(nets),
            None => Ok(Vec::new()),
        }
    }

    /// An evaluator of many parameter vectors of `net`'s shape over `data`, set up once (on
    /// the GPU: the data uploaded and the kernel built) for any number of batches. A shape
    /// too wide for the GPU's many-vectors kernel is evaluated a vector at a time by a GPU
    /// training engine; under `auto`, what the GPU cannot take at all runs on the CPU.
    pub fn sse_of_many_evaluator<'a>(
        &self,
        net: &Network,
        data: &'a Points<'a>,
    ) -> Result<SseOfMany<'a>> {
        data.check_shape(net.inputs(), net.outputs(), "landscape data")?;
        #[cfg(feature = "gpu")]
        if let Some(ctx) = &self.ctx {
            match crate::gpu::landscape::SseOfMany::new(ctx, net, data, GpuOptions::default()) {
                Ok(gpu) => return Ok(SseOfMany::Gpu(Box::new(gpu))),
                // Wider than the landscape kernel: one evaluation per vector by a training
                // engine (the layered kernels), the data uploaded once.
                Err(Error::Unsupported(_)) => {
                    match GpuEngine::new(ctx.clone(), net.clone(), data, GpuOptions::default()) {
                        Ok(engine) => {
                            return Ok(SseOfMany::GpuEngine(std::cell::RefCell::new(Box::new(
                                engine,
                            ))))
                        }
                        Err(e) if self.falls_back(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) if self.falls_back(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(SseOfMany::Cpu(data))
    }
}

/// See [`Target::evaluator`].
pub enum Evaluator<'a> {
    Cpu(&'a Points<'a>, Box<dyn CpuKernel>),
    #[cfg(feature = "gpu")]
    Gpu(Box<GpuEngine>),
}

impl Evaluator<'_> {
    /// The SSE and its gradient at `net`'s weights (of the shape the evaluator was made for).
    pub fn evaluate(&mut self, net: &Network) -> Result<Evaluation> {
        match self {
            Evaluator::Cpu(data, kernel) => Ok(kernel.evaluate(net, data)),
            #[cfg(feature = "gpu")]
            Evaluator::Gpu(engine) => {
                engine.load_network(net)?;
                engine.evaluate()
            }
        }
    }
}

/// What a `--verify` run checks an engine against: the GPU engine against the fused CPU
/// kernel, the fused CPU kernel against the f64 reference (checking a kernel against itself
/// could never fail).
fn checker_of(gpu: bool) -> Target {
    Target::cpu(if gpu {
        CpuVariant::Fused
    } else {
        CpuVariant::Reference
    })
}

/// A sweep engine as [`Target::sweep_engine`] opened it.
pub enum OpenSweep<'a> {
    /// The GPU's: it holds its own copy of the data.
    #[cfg(feature = "gpu")]
    Gpu(Box<GpuSweep>),
    /// The CPU's, reading the caller's data.
    Cpu(CpuSweep<'a>),
}

impl<'a> OpenSweep<'a> {
    /// What a `--verify` run checks each run of this sweep against.
    pub fn checker(&self) -> Target {
        checker_of(!matches!(self, OpenSweep::Cpu(_)))
    }

    /// The engine behind the common interface.
    pub fn boxed(self) -> Box<dyn SweepEngine + 'a> {
        match self {
            #[cfg(feature = "gpu")]
            OpenSweep::Gpu(sweep) => sweep,
            OpenSweep::Cpu(sweep) => Box::new(sweep),
        }
    }
}

/// A training engine as [`Target::engine`] opened it.
pub enum OpenEngine<'a> {
    /// The GPU engine: it holds its own copy of the data.
    #[cfg(feature = "gpu")]
    Gpu(Box<GpuEngine>),
    /// The fused CPU engine, reading the caller's data.
    Cpu(CpuEngine<'a>),
}

impl<'a> OpenEngine<'a> {
    /// Whether this is the GPU engine (which holds its own copy of the data).
    pub fn is_gpu(&self) -> bool {
        !matches!(self, OpenEngine::Cpu(_))
    }

    /// What a `--verify` run checks this engine against (see [`checker_of`]).
    pub fn checker(&self) -> Target {
        checker_of(self.is_gpu())
    }

    /// The engine behind the common interface.
    pub fn boxed(self) -> Box<dyn Engine + 'a> {
        match self {
            #[cfg(feature = "gpu")]
            OpenEngine::Gpu(engine) => engine,
            OpenEngine::Cpu(engine) => Box::new(engine),
        }
    }
}

/// See [`Target::sse_of_many_evaluator`].
pub enum SseOfMany<'a> {
    Cpu(&'a Points<'a>),
    /// The GPU's many-vectors kernel, for shapes it takes.
    #[cfg(feature = "gpu")]
    Gpu(Box<crate::gpu::landscape::SseOfMany>),
    /// A GPU training engine evaluating one vector at a time, for wider networks.
    #[cfg(feature = "gpu")]
    GpuEngine(std::cell::RefCell<Box<GpuEngine>>),
}

impl SseOfMany<'_> {
    /// The SSE of each of `nets` over the data.
    pub fn sse(&self, nets: &[Network]) -> Result<Vec<f64>> {
        match self {
            SseOfMany::Cpu(data) => Ok(crate::cpu::sse_of_many(nets, data)),
            #[cfg(feature = "gpu")]
            SseOfMany::Gpu(gpu) => gpu.sse(nets),
            #[cfg(feature = "gpu")]
            SseOfMany::GpuEngine(engine) => {
                let mut engine = engine.borrow_mut();
                nets.iter()
                    .map(|net| {
                        engine.load_network(net)?;
                        engine.sse()
                    })
                    .collect()
            }
        }
    }
}

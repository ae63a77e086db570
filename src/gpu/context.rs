//! Finding adapters and opening a device: kept apart from the work, so tests can hand an
//! engine a device and the command can fall back to the CPU when there is none.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// How to pick an adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterChoice {
    /// Hardware adapters only: a software adapter (such as Mesa's lavapipe) is slower than the
    /// native CPU path, so `--device auto` does not use one.
    HardwareOnly,
    /// Any adapter, software ones included (`--device gpu`); hardware first.
    Any,
}

/// What `downhill info` shows about an adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub software: bool,
    pub driver: String,
    pub max_storage_binding_bytes: u64,
    pub max_buffer_bytes: u64,
    pub max_workgroups_per_dimension: u32,
    pub max_invocations_per_workgroup: u32,
    /// The smallest and largest subgroup sizes, where the adapter has wgpu's subgroup
    /// operations (the kernels then sum with them).
    pub subgroup_sizes: Option<(u32, u32)>,
}

/// The one wgpu instance of the process: creating one probes every driver, which is slow and,
/// with some Vulkan drivers, noisy on stderr.
fn instance() -> &'static wgpu::Instance {
    static INSTANCE: std::sync::OnceLock<wgpu::Instance> = std::sync::OnceLock::new();
    INSTANCE.get_or_init(new_instance)
}

fn new_instance() -> wgpu::Instance {
    // The primary backends (Vulkan, Metal, DX12) run compute well; the GL backend would list
    // the same devices again and complain about missing display servers. `with_env` lets
    // WGPU_BACKEND (and the other WGPU_* settings) override that.
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::PRIMARY;
    // A buffer that would take the adapter past this share of its memory budget fails as "out
    // of memory" inside the allocation's error scope, before the driver is asked for it
    // (Vulkan adapters with VK_EXT_memory_budget; elsewhere the driver's own failure is caught
    // by the same scope).
    desc.memory_budget_thresholds.for_resource_creation = Some(memory_percent());
    wgpu::Instance::new(desc.with_env())
}

/// The variable that sets the share of the adapter's memory budget downhill may fill.
pub const MEMORY_PERCENT_VARIABLE: &str = "DOWNHILL_GPU_MEMORY_PERCENT";

/// The share (percent) of the adapter's memory budget downhill's buffers may fill: 90, or
/// `DOWNHILL_GPU_MEMORY_PERCENT` (1-100).
fn memory_percent() -> u8 {
    match std::env::var(MEMORY_PERCENT_VARIABLE) {
        Ok(text) => {
            match text.trim().parse::<u8>() {
                Ok(p) if (1..=100).contains(&p) => p,
                _ => {
                    log::warn!("{MEMORY_PERCENT_VARIABLE}={text} is not a percentage from 1 to 100; using 90");
                    90
                }
            }
        }
        Err(_) => 90,
    }
}

fn is_software(info: &wgpu::AdapterInfo) -> bool {
    info.device_type == wgpu::DeviceType::Cpu
}

fn summary(adapter: &wgpu::Adapter) -> AdapterSummary {
    let info = adapter.get_info();
    let limits = adapter.limits();
    AdapterSummary {
        software: is_software(&info),
        name: info.name,
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        max_storage_binding_bytes: limits.max_storage_buffer_binding_size,
        max_buffer_bytes: limits.max_buffer_size,
        max_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
        max_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        subgroup_sizes: adapter
            .features()
            .contains(wgpu::Features::SUBGROUP)
            .then_some((info.subgroup_min_size, info.subgroup_max_size)),
    }
}

fn adapters() -> Vec<wgpu::Adapter> {
    let instance = instance();
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .into_iter()
        .filter(|a| a.get_info().backend != wgpu::Backend::Noop)
        .collect()
}

/// Every adapter wgpu finds (on the backends `WGPU_BACKEND` allows).
pub fn list_adapters() -> Vec<AdapterSummary> {
    adapters().iter().map(summary).collect()
}

/// The adapters `choice` takes, hardware first; of them the one at `index`, counted round
/// (process `r` of a data-parallel run takes adapter `r` modulo their count).
fn pick(choice: AdapterChoice, index: usize) -> Option<wgpu::Adapter> {
    let mut found: Vec<wgpu::Adapter> = adapters()
        .into_iter()
        .filter(|a| match choice {
            AdapterChoice::HardwareOnly => !is_software(&a.get_info()),
            AdapterChoice::Any => true,
        })
        .collect();
    found.sort_by_key(|a| is_software(&a.get_info()));
    let count = found.len();
    (count > 0).then(|| found.swap_remove(index % count))
}

/// The summary of the adapter `choice` would use, if any.
pub fn preferred_adapter(choice: AdapterChoice) -> Option<AdapterSummary> {
    pick(choice, 0).as_ref().map(summary)
}

/// A compiled compute pipeline and the layout of its one bind group.
pub(super) type CompiledKernel = (wgpu::ComputePipeline, wgpu::BindGroupLayout);

/// An open device and what downhill needs to know about it. Cloning shares the device.
#[derive(Clone)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    pub limits: wgpu::Limits,
    /// Whether the device was opened with subgroup operations (the adapter has them).
    pub subgroups: bool,
    /// Set by wgpu when the device is lost; checked after every wait.
    lost: Arc<Mutex<Option<String>>>,
    /// Compiled kernels by their generated source: each is built once per device.
    kernels: Arc<Mutex<HashMap<String, CompiledKernel>>>,
}

impl GpuContext {
    /// Opens a device on the adapter `choice` picks, with the adapter's own limits (the
    /// defaults are the WebGPU minimums, far below what compute needs). `Ok(None)` when there
    /// is no such adapter.
    pub fn open(choice: AdapterChoice) -> Result<Option<GpuContext>> {
        Self::open_among(choice, 0)
    }

    /// As [`GpuContext::open`], on the adapter at `index` (counted round) among those
    /// `choice` takes, hardware first.
    pub fn open_among(choice: AdapterChoice, index: usize) -> Result<Option<GpuContext>> {
        let Some(adapter) = pick(choice, index) else {
            return Ok(None);
        };
        let limits = adapter.limits();
        let summary = summary(&adapter);
        // Subgroup operations make every sum in the kernels cheaper; where the adapter lacks
        // them the kernels sum in workgroup memory.
        let subgroups = summary.subgroup_sizes.is_some();
        let required_features = if subgroups {
            wgpu::Features::SUBGROUP
        } else {
            wgpu::Features::empty()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("downhill"),
            required_features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::Gpu(format!("could not open {}: {e}", summary.name)))?;
        let lost = Arc::new(Mutex::new(None));
        let flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = flag.lock() {
                *slot = Some(format!("{reason:?}: {message}"));
            }
        });
        // Errors outside an error scope would otherwise panic inside wgpu; they are logged
        // and surface as a failed wait or a lost device instead.
        device.on_uncaptured_error(Arc::new(|e: wgpu::Error| log::error!("GPU error: {e}")));
        log::info!(
            "GPU adapter: {} ({}, {})",
            summary.name,
            summary.backend,
            summary.device_type
        );
        Ok(Some(GpuContext {
            device,
            queue,
            adapter: summary,
            limits,
            subgroups,
            lost,
            kernels: Arc::default(),
        }))
    }

    /// The kernel compiled from `key` before, if any.
    pub(super) fn cached_kernel(&self, key: &str) -> Option<CompiledKernel> {
        self.kernels.lock().ok()?.get(key).cloned()
    }

    /// Keeps `kernel` for the next request of `key`.
    pub(super) fn cache_kernel(&self, key: String, kernel: CompiledKernel) {
        if let Ok(mut kernels) = self.kernels.lock() {
            kernels.insert(key, kernel);
        }
    }

    /// The message of a lost device, if it was lost.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().ok().and_then(|slot| slot.clone())
    }

    /// Runs `f` inside validation and out-of-memory error scopes and turns a captured error
    /// into the library's error type.
    pub fn checked<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let validation = pollster::block_on(validation.pop());
        let oom = pollster::block_on(oom.pop());
        if let Some(e) = oom {
            return Err(Error::Gpu(format!(
                "{what}: out of GPU memory ({e}); the adapter's memory, or the share of it \
                 that {MEMORY_PERCENT_VARIABLE} allows, is too small for this run: use fewer \
                 points or --device cpu"
            )));
        }
        if let Some(e) = validation {
            return Err(Error::Gpu(format!("{what}: {e}")));
        }
        Ok(value)
    }

    /// Waits for all submitted work; a lost device or failed wait becomes an error.
    pub fn wait(&self) -> Result<()> {
        let result = self.device.poll(wgpu::PollType::wait_indefinitely());
        if let Some(message) = self.lost() {
            return Err(Error::Gpu(format!("the GPU device was lost ({message})")));
        }
        result
            .map(drop)
            .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))
    }
}

//! The GPU path: WGSL compute kernels specialised per network shape, run through wgpu.
//!
//! [`context`] finds adapters and opens a device; [`shaders`] writes the kernels' source for a
//! shape; `pipelines` compiles them; [`engine`] owns the buffers and runs descent.

mod batching;
mod buffers;
mod chunks;
pub mod context;
pub mod engine;
pub mod landscape;
mod layered;
mod per_point;
mod pipelines;
pub mod probe;
mod runs;
pub mod shaders;

pub use chunks::GpuOptions;
pub use context::{list_adapters, preferred_adapter, AdapterChoice, AdapterSummary, GpuContext};
pub use engine::GpuEngine;
pub use runs::GpuSweep;

//! The CPU path: two kernels behind one interface, and the engine that takes descent steps
//! with either.
//!
//! [`Reference`] is the readable layer-by-layer ndarray version in f64; [`Fused`] is the fast
//! one (one parallel pass over the points per step). Both compute the SSE and its gradient;
//! the loss choice (MSE or SSE) is a scale applied afterwards. [`CpuSweep`] steps many runs of
//! one shape from one pass over the points per step.

#[cfg(target_arch = "x86_64")]
mod avx512;
mod engine;
mod fused;
mod kernel;
mod layout;
mod many;
pub mod probe;
pub mod reference;
mod runs;
mod shared;
mod simd;
mod small;
mod sweep;
mod tile;

pub use engine::{CpuEngine, CpuVariant};
pub use fused::Fused;
pub use kernel::CpuKernel;
pub use many::sse_of_many;
pub use reference::Reference;
pub use runs::CpuSweep;
pub use shared::{SharedEngine, SharedSweep};
pub use sweep::sse_along_one_weight;

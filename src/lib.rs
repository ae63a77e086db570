//! downhill trains small dense neural networks by gradient descent on the squared-error loss.
//!
//! It grows from one lesson, "the need for optimization": a network makes predictions, the
//! errors over many points are squared and summed (or averaged) into a loss, and gradient
//! descent walks the weights downhill: find the slope, take a small step against it, repeat
//! until flat.
//!
//! ```
//! use downhill::device::Target;
//! use downhill::{Activation, Descent, DeviceChoice, Network};
//!
//! // Points from the lesson's baseline network, then a random student trained on them on
//! // the CPU (`DeviceChoice::Auto` would take a GPU when there is one).
//! let teacher = Network::lesson_baseline(Activation::Identity);
//! let data = downhill::data::generate(&teacher, 1000, 0.0, 7).unwrap();
//! let student = Network::random(&[2, 2, 1], Activation::Identity, false, 1).unwrap();
//! let target = Target::resolve(DeviceChoice::Cpu).unwrap();
//! let mut engine = target.engine(student, &data).unwrap().boxed();
//! let descent = Descent { learning_rate: 0.05, max_steps: 200, ..Descent::default() };
//! let outcome = descent.run(engine.as_mut(), &mut []).unwrap();
//! assert!(outcome.final_loss < outcome.history[0].loss);
//! ```

pub mod batches;
pub mod bench;
pub mod cpu;
pub mod data;
pub mod descent;
pub mod device;
#[cfg(feature = "mpi")]
pub mod distributed;
pub mod error;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod landscape;
pub mod limits;
pub mod loss;
pub mod model_file;
pub mod network;
pub mod optimizer;
pub mod output;
#[cfg(feature = "plot")]
pub mod plot;
#[cfg(feature = "cli")]
pub mod progress;
pub mod sweep;
pub mod verify;

pub use data::{Dataset, Points};
pub use descent::{Descent, Engine, Observer, Outcome, StepRecord, StopReason};
pub use device::DeviceChoice;
pub use error::{Error, Result};
pub use loss::{Evaluation, LossKind};
pub use network::{Activation, Layer, Network};

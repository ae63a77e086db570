//! The interface both CPU kernels implement.

use ndarray::{Array2, ArrayView2};

use crate::data::Points;
use crate::loss::Evaluation;
use crate::network::Network;

/// A CPU implementation of the math.
pub trait CpuKernel: Send {
    /// `fused` or `reference`.
    fn name(&self) -> &'static str;
    /// The SSE and its gradient over `data` at `net`'s weights.
    fn evaluate(&mut self, net: &Network, data: &Points) -> Evaluation;
    /// The same for several networks of one shape (a sweep), in order. Kernels that can
    /// evaluate them in one pass over the data do; the others evaluate one after another.
    fn evaluate_many(&mut self, nets: &[&Network], data: &Points) -> Vec<Evaluation> {
        nets.iter().map(|net| self.evaluate(net, data)).collect()
    }
    /// Predictions for inputs given column by column: `(inputs, points)` in,
    /// `(outputs, points)` out.
    fn predict(&mut self, net: &Network, inputs: ArrayView2<f32>) -> Array2<f32>;
    /// Makes every once-per-process choice for `net`'s shape now (the fused kernel times its
    /// builds once), so that it is not counted in the first step's time.
    fn prepare(&mut self, _net: &Network) {}
}

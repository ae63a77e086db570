//! The readable reference: layer by layer with ndarray, everything in f64. It allocates whole
//! activation matrices per call, so it is slow and memory-hungry; it is what the fused CPU
//! kernel and the GPU kernels are checked against.

use ndarray::{Array2, ArrayView2, Axis};

use super::kernel::CpuKernel;
use crate::data::Points;
use crate::loss::Evaluation;
use crate::network::Network;

/// Bytes the reference holds for one evaluation over `points` points: every layer's
/// activations and deltas in f64, and about as much again in temporaries (`None` on overflow).
pub fn memory_needed(net: &Network, points: usize) -> Option<u64> {
    let values = net
        .widths()
        .iter()
        .try_fold(0usize, |sum, &w| sum.checked_add(w))?;
    crate::limits::bytes_for(points, values.checked_mul(8 * 4)?)
}

/// The reference CPU kernel.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reference;

/// Every layer's activations: `[a_0 = x, a_1, ..., a_L = prediction]`.
fn activations(net: &Network, x: ArrayView2<f64>) -> Vec<Array2<f64>> {
    let mut acts = vec![x.to_owned()];
    for layer in net.layers() {
        let next = layer.forward_columns(acts[acts.len() - 1].view());
        acts.push(next);
    }
    acts
}

impl CpuKernel for Reference {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn evaluate(&mut self, net: &Network, data: &Points) -> Evaluation {
        let x = data.input_columns().mapv(f64::from);
        let y = data.target_columns().mapv(f64::from);
        let acts = activations(net, x.view());
        let error = &acts[acts.len() - 1] - &y;
        let sse = error.iter().map(|e| e * e).sum();

        // Backpropagation: `delta` is the slope of the SSE with respect to a layer's `z`.
        let layers = net.layers();
        let output = layers[layers.len() - 1].activation;
        let mut delta = Array2::from_shape_fn(error.dim(), |(k, p)| {
            2.0 * error[(k, p)] * output.slope_from_output(acts[acts.len() - 1][(k, p)])
        });
        let mut per_layer = Vec::with_capacity(layers.len());
        for (l, layer) in layers.iter().enumerate().rev() {
            let weight_gradient = delta.dot(&acts[l].t());
            let bias_gradient = layer.bias.as_ref().map(|_| delta.sum_axis(Axis(1)));
            if l > 0 {
                let below = layers[l - 1].activation;
                let mut back = layer.weights.t().dot(&delta);
                back.zip_mut_with(&acts[l], |d, &a| *d *= below.slope_from_output(a));
                delta = back;
            }
            per_layer.push((weight_gradient, bias_gradient));
        }
        let sse_gradient = per_layer
            .into_iter()
            .rev()
            .flat_map(|(w, b)| w.into_iter().chain(b.into_iter().flatten()))
            .collect();
        Evaluation {
            points: data.len(),
            outputs: data.outputs(),
            sse,
            sse_gradient,
        }
    }

    fn predict(&mut self, net: &Network, inputs: ArrayView2<f32>) -> Array2<f32> {
        net.forward_columns(inputs.mapv(f64::from).view())
            .mapv(|v| v as f32)
    }
}

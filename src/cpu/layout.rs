//! The network as the CPU kernels read it: every layer's offsets in one flat f32 parameter
//! vector, and the same vector with each weight matrix transposed for the backward pass. Both
//! the general tile kernel (`fused`) and the small-network kernels (`small`) build on it.

use crate::network::{Activation, Network};

/// One layer as the kernels see it: offsets into the flat f32 parameter vector.
#[derive(Clone, Copy, Debug)]
pub struct LayerPlan {
    pub inputs: usize,
    pub nodes: usize,
    pub weights: usize,
    pub bias: Option<usize>,
    pub activation: Activation,
}

/// The network flattened to f32 for one step.
pub struct KernelLayout {
    pub layers: Vec<LayerPlan>,
    pub params: Vec<f32>,
    /// The same vector with every layer's weight matrix transposed in place (`inputs x nodes`
    /// at the same offset), for the backward pass's products.
    pub transposed: Vec<f32>,
    pub widths: Vec<usize>,
}

impl KernelLayout {
    pub fn new(net: &Network) -> Self {
        let layers: Vec<LayerPlan> = net
            .layers()
            .iter()
            .zip(net.param_offsets())
            .map(|(l, (weights, bias))| LayerPlan {
                inputs: l.inputs(),
                nodes: l.nodes(),
                weights,
                bias,
                activation: l.activation,
            })
            .collect();
        let params: Vec<f32> = net.params().iter().map(|&p| p as f32).collect();
        let mut transposed = params.clone();
        for l in &layers {
            let l: &LayerPlan = l;
            for j in 0..l.nodes {
                for i in 0..l.inputs {
                    transposed[l.weights + i * l.nodes + j] = params[l.weights + j * l.inputs + i];
                }
            }
        }
        KernelLayout {
            layers,
            params,
            transposed,
            widths: net.widths(),
        }
    }

    pub fn outputs(&self) -> usize {
        self.widths[self.widths.len() - 1]
    }
}

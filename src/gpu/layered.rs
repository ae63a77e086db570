//! The gradient pass for networks too wide for the per-point kernel (more than
//! `shaders::MAX_PARAMS` parameters or `shaders::MAX_NODES` nodes): the data goes through the
//! network a batch of points and a layer at a time (shaders/layered.wgsl), with every layer's
//! activations and errors in device buffers, and each weight's gradient summed over a batch
//! by one thread of a tiled product. It leaves the step's totals (the gradient of the SSE,
//! then the SSE) where the update pass reads them, as the per-point pass and its reduction do.

use ndarray::Array2;

use super::buffers::{self, BatchUniform};
use super::chunks::{self, Chunk, GpuOptions};
use super::context::GpuContext;
use super::pipelines::{self, Kernel};
use super::shaders::{Reduction, Shape};
use crate::data::Points;
use crate::error::{Error, Result};

/// Points per batch at most: the rows of the activation and error buffers. Small enough that
/// those buffers stay small for wide networks, and that a weight's f32 sum over a batch stays
/// short; large enough that a batch's dispatches keep an adapter busy.
const MAX_BATCH: usize = 8192;
/// Threads per workgroup of the per-point kernels in layered.wgsl (`WG`).
const POINT_THREADS: u32 = 64;
/// The side of the gradient's weight tiles (`SPAN`) and the reductions' workgroup (`SUM_WG`).
const SPAN: u32 = 32;
/// Nodes per thread of the forward and backward kernels (`BLOCK`).
const BLOCK: u32 = 4;
const SUM_THREADS: u32 = 256;

/// Points per batch on this adapter, and the bytes of one point's column in the work buffers
/// (one row per node plus the squared errors' row); refused when a point or a layer does not
/// fit the adapter's limits.
fn batch_points(ctx: &GpuContext, shape: &Shape, options: GpuOptions) -> Result<(usize, u64)> {
    let binding = chunks::binding_bytes(ctx, options);
    let row_bytes = (shape.nodes as u64 + 1) * 4;
    let batch = (binding / row_bytes).min(MAX_BATCH as u64) as usize;
    if batch == 0 {
        return Err(Error::Unsupported(format!(
            "one point's activations ({row_bytes} bytes) do not fit in one storage binding of \
             {binding} bytes on this adapter"
        )));
    }
    // Every dispatch within the adapter's workgroup count: forward and backward take BLOCK
    // nodes per workgroup row, loading the inputs one per row, zeroing the totals 256 per
    // workgroup.
    let max_groups = u64::from(ctx.limits.max_compute_workgroups_per_dimension);
    let widest = (0..shape.layer_count())
        .map(|l| shape.layer_size(l))
        .map(|(inputs, nodes, _)| inputs.max(nodes))
        .max()
        .unwrap_or(1) as u64;
    let most = [
        widest.div_ceil(u64::from(BLOCK)),
        shape.inputs as u64,
        (shape.params as u64 + 1).div_ceil(u64::from(SUM_THREADS)),
    ];
    if most.iter().any(|&groups| groups > max_groups) {
        return Err(Error::Unsupported(format!(
            "a network of {} with {} parameters needs more workgroups in one dispatch than this \
             adapter's {max_groups}",
            shape.describe_widths(),
            shape.params
        )));
    }
    Ok((batch, row_bytes))
}

/// The forward pass of a batch: its inputs loaded, then every layer's activations. Training
/// and prediction both record it.
struct Forward {
    inputs: u32,
    load: Kernel,
    /// Each layer's kernel and its nodes.
    layers: Vec<(Kernel, u32)>,
}

impl Forward {
    fn new(ctx: &GpuContext, shape: &Shape, batch: u32, reduction: Reduction) -> Result<Self> {
        Ok(Forward {
            inputs: shape.inputs as u32,
            load: pipelines::layered(ctx, shape, 0, batch, "load_inputs", reduction)?,
            layers: (0..shape.layer_count())
                .map(|l| {
                    let (_, nodes, _) = shape.layer_size(l);
                    Ok((
                        pipelines::layered(ctx, shape, l, batch, "forward", reduction)?,
                        nodes as u32,
                    ))
                })
                .collect::<Result<Vec<_>>>()?,
        })
    }

    /// Records it for a batch of `count` points, whose bind group is set.
    fn record(&self, pass: &mut wgpu::ComputePass<'_>, count: u32) {
        let points = count.div_ceil(POINT_THREADS);
        pass.set_pipeline(&self.load.pipeline);
        pass.dispatch_workgroups(points, self.inputs, 1);
        for (kernel, nodes) in &self.layers {
            pass.set_pipeline(&kernel.pipeline);
            pass.dispatch_workgroups(points, nodes.div_ceil(BLOCK), 1);
        }
    }
}

/// The batch uniform of the `count` points from `start` of `chunk`.
fn batch_uniform(ctx: &GpuContext, chunk: &Chunk, start: usize, count: usize) -> wgpu::Buffer {
    let uniform = BatchUniform {
        start: start as u32,
        count: count as u32,
        stride: chunk.points() as u32,
        _pad: 0,
    };
    buffers::init(
        ctx,
        "batch",
        bytemuck::bytes_of(&uniform),
        wgpu::BufferUsages::UNIFORM,
    )
}

/// The backward kernels of one layer.
struct LayerKernels {
    inputs: u32,
    nodes: u32,
    bias: bool,
    backward: Kernel,
    gradient: Kernel,
}

/// One batch of points of one data chunk, bound to every kernel.
struct BoundBatch {
    count: u32,
    group: wgpu::BindGroup,
}

/// The layered gradient pass over all the data.
pub(super) struct LayeredPass {
    params: u32,
    chunks: usize,
    zero: Kernel,
    forward: Forward,
    error: Kernel,
    sum: Kernel,
    layers: Vec<LayerKernels>,
    batches: Vec<BoundBatch>,
    /// Each data chunk's batches (a mini-batch's, when each chunk is one).
    chunk_batches: Vec<std::ops::Range<usize>>,
    /// Each data chunk's buffer.
    data: Vec<wgpu::Buffer>,
    /// Held for the bind groups: the batches' uniforms, the work buffers.
    _buffers: Vec<wgpu::Buffer>,
}

impl LayeredPass {
    /// Builds the kernels for `shape`, uploads `data` and binds every batch to `params`,
    /// `totals` and `state`.
    pub fn new(
        ctx: &GpuContext,
        shape: &Shape,
        data: &Points,
        options: GpuOptions,
        params: &wgpu::Buffer,
        totals: &wgpu::Buffer,
        state: &wgpu::Buffer,
    ) -> Result<Self> {
        let (batch, row_bytes) = batch_points(ctx, shape, options)?;
        let reduction = options.reduction(ctx);
        let entry =
            |layer, name| pipelines::layered(ctx, shape, layer, batch as u32, name, reduction);
        let layers = (0..shape.layer_count())
            .map(|l| {
                let (inputs, nodes, bias) = shape.layer_size(l);
                Ok(LayerKernels {
                    inputs: inputs as u32,
                    nodes: nodes as u32,
                    bias,
                    backward: entry(l, "backward")?,
                    gradient: entry(l, "gradient")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let forward = Forward::new(ctx, shape, batch as u32, reduction)?;
        let (zero, error, sum) = (
            entry(0, "zero_totals")?,
            entry(0, "output_error")?,
            entry(0, "sum_squares")?,
        );

        let cut = chunks::cut(
            ctx,
            data.len(),
            data.inputs() + data.outputs(),
            POINT_THREADS as usize,
            0,
            options,
        )?;
        ctx.checked("allocating the layered kernels' buffers", || {
            use wgpu::BufferUsages as U;
            let work = batch as u64 * row_bytes;
            let acts = buffers::empty(ctx, "activations", work, U::STORAGE);
            let deltas = buffers::empty(ctx, "errors", work, U::STORAGE);
            let mut kept = Vec::new();
            let mut batches = Vec::new();
            let mut chunk_batches = Vec::new();
            let data = cut.upload(ctx, data);
            for (chunk, chunk_data) in cut.chunks.iter().zip(&data) {
                let first = batches.len();
                for start in (0..chunk.points()).step_by(batch) {
                    let count = batch.min(chunk.points() - start);
                    let uniform = batch_uniform(ctx, chunk, start, count);
                    let group = forward.load.bind(
                        ctx,
                        &[chunk_data, params, &acts, &deltas, totals, &uniform, state],
                    );
                    batches.push(BoundBatch {
                        count: count as u32,
                        group,
                    });
                    kept.push(uniform);
                }
                chunk_batches.push(first..batches.len());
            }
            kept.extend([acts, deltas]);
            LayeredPass {
                params: shape.params as u32,
                chunks: cut.chunks.len(),
                zero: zero.clone(),
                forward,
                error: error.clone(),
                sum: sum.clone(),
                layers,
                batches,
                chunk_batches,
                data,
                _buffers: kept,
            }
        })
    }

    /// Data chunks (one storage binding each).
    pub fn chunk_count(&self) -> usize {
        self.chunks
    }

    /// Records one step's gradient: the totals zeroed, then every batch through every layer
    /// and back.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.record_pass(pass, true);
    }

    /// Records the SSE alone (into the totals' last value): every batch forward, no gradient.
    pub fn record_loss(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.record_pass(pass, false);
    }

    /// Records one step's gradient over data chunk `chunk` alone (a mini-batch).
    pub fn record_chunk(&self, pass: &mut wgpu::ComputePass<'_>, chunk: usize) {
        self.record_batches(pass, self.chunk_batches[chunk].clone(), true);
    }

    /// Every chunk's data buffer, in order.
    pub fn data_buffers(&self) -> Vec<&wgpu::Buffer> {
        self.data.iter().collect()
    }

    fn record_pass(&self, pass: &mut wgpu::ComputePass<'_>, gradient: bool) {
        self.record_batches(pass, 0..self.batches.len(), gradient);
    }

    /// The totals zeroed, then the batches `range` forward (and back, with `gradient`).
    fn record_batches(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        range: std::ops::Range<usize>,
        gradient: bool,
    ) {
        pass.set_pipeline(&self.zero.pipeline);
        pass.set_bind_group(0, &self.batches[range.start].group, &[]);
        pass.dispatch_workgroups((self.params + 1).div_ceil(SUM_THREADS), 1, 1);
        for batch in &self.batches[range] {
            let points = batch.count.div_ceil(POINT_THREADS);
            pass.set_bind_group(0, &batch.group, &[]);
            self.forward.record(pass, batch.count);
            pass.set_pipeline(&self.error.pipeline);
            pass.dispatch_workgroups(points, 1, 1);
            pass.set_pipeline(&self.sum.pipeline);
            pass.dispatch_workgroups(1, 1, 1);
            if !gradient {
                continue;
            }
            for (l, layer) in self.layers.iter().enumerate().rev() {
                pass.set_pipeline(&layer.gradient.pipeline);
                let columns = layer.inputs + u32::from(layer.bias);
                pass.dispatch_workgroups(columns.div_ceil(SPAN), layer.nodes.div_ceil(SPAN), 1);
                if l > 0 {
                    pass.set_pipeline(&layer.backward.pipeline);
                    pass.dispatch_workgroups(points, layer.inputs.div_ceil(BLOCK), 1);
                }
            }
        }
    }
}

/// Predictions of a network of any shape for inputs given column by column (`columns`, each
/// `points` long): a batch of points at a time through the layered kernels' forward pass, the
/// output rows copied back after each batch. Only one data chunk is on the device at once.
pub(super) fn predict(
    ctx: &GpuContext,
    shape: &Shape,
    params32: &[f32],
    columns: &[&[f32]],
    options: GpuOptions,
) -> Result<Array2<f32>> {
    let points = columns.first().map_or(0, |c| c.len());
    let (batch, row_bytes) = batch_points(ctx, shape, options)?;
    let forward = Forward::new(ctx, shape, batch as u32, options.reduction(ctx))?;
    let cut = chunks::cut(
        ctx,
        points,
        shape.inputs,
        POINT_THREADS as usize,
        0,
        options,
    )?;
    let outputs = shape.outputs;
    let output_row = shape.output_row() as u64;
    let mut out = Array2::<f32>::zeros((outputs, points));
    let (params, acts, unused_deltas, unused_totals, state) =
        ctx.checked("allocating the prediction's buffers", || {
            use wgpu::BufferUsages as U;
            (
                buffers::init(ctx, "params", bytemuck::cast_slice(params32), U::STORAGE),
                buffers::empty(
                    ctx,
                    "activations",
                    batch as u64 * row_bytes,
                    U::STORAGE | U::COPY_SRC,
                ),
                buffers::empty(ctx, "errors (unused)", 16, U::STORAGE),
                buffers::empty(ctx, "totals (unused)", 16, U::STORAGE),
                // All zeros: a run that has not stopped.
                buffers::empty(ctx, "state", 16, U::STORAGE),
            )
        })?;
    for chunk in &cut.chunks {
        let data = ctx.checked("uploading the prediction's inputs", || {
            buffers::upload_columns(ctx, columns, chunk.start, chunk.end)
        })?;
        for start in (0..chunk.points()).step_by(batch) {
            let count = batch.min(chunk.points() - start);
            let bytes = (outputs * count * 4) as u64;
            let readback = ctx.checked("running the prediction's kernels", || {
                use wgpu::BufferUsages as U;
                let uniform = batch_uniform(ctx, chunk, start, count);
                let group = forward.load.bind(
                    ctx,
                    &[
                        &data,
                        &params,
                        &acts,
                        &unused_deltas,
                        &unused_totals,
                        &uniform,
                        &state,
                    ],
                );
                let readback = buffers::empty(ctx, "predictions", bytes, U::MAP_READ | U::COPY_DST);
                let mut encoder = ctx.device.create_command_encoder(&Default::default());
                {
                    let mut pass = encoder.begin_compute_pass(&Default::default());
                    pass.set_bind_group(0, &group, &[]);
                    forward.record(&mut pass, count as u32);
                }
                for k in 0..outputs as u64 {
                    let row = (output_row + k) * batch as u64 * 4;
                    let at = k * count as u64 * 4;
                    encoder.copy_buffer_to_buffer(&acts, row, &readback, at, count as u64 * 4);
                }
                ctx.queue.submit([encoder.finish()]);
                readback
            })?;
            let values: Vec<f32> =
                bytemuck::pod_collect_to_vec(&buffers::read_staging(ctx, &readback, bytes)?);
            let first = chunk.start + start;
            for k in 0..outputs {
                out.row_mut(k).as_slice_mut().expect("standard layout")[first..first + count]
                    .copy_from_slice(&values[k * count..(k + 1) * count]);
            }
        }
    }
    Ok(out)
}

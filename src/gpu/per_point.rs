//! The gradient pass for narrow networks (shaders/fused_step.wgsl): each thread takes points in
//! turn with every activation and a private copy of every gradient sum, each workgroup writes
//! one row of partial sums, and the reduce pass adds the rows into the step's totals (the
//! gradient of the SSE, then the SSE). The fastest pass while the network fits a thread:
//! `shaders::MAX_PARAMS` parameters and `shaders::MAX_NODES` nodes.
//!
//! It steps many runs (a sweep's) at once: each read of a point serves the runs of a
//! workgroup's slots (up to `Shape::max_slots`), and rows of workgroups take further slots.

use super::buffers::{self, RowsUniform};
use super::chunks::{self, GpuOptions};
use super::context::GpuContext;
use super::pipelines;
use super::shaders::{Shape, MAX_SLOTS};
use crate::data::Points;
use crate::error::{Error, Result};

/// The buffers of every run that the passes bind.
pub(super) struct RunBuffers<'a> {
    /// Every run's parameters, one after another.
    pub params: &'a wgpu::Buffer,
    /// Every run's totals: the gradient of the SSE, then the SSE.
    pub totals: &'a wgpu::Buffer,
    /// Every run's state (a stopped run is skipped).
    pub states: &'a wgpu::Buffer,
    /// The runs a step trains: their count, then their indices.
    pub active: &'a wgpu::Buffer,
}

/// One slice of the data in its own storage binding.
struct DataChunk {
    groups: u32,
    data: wgpu::Buffer,
    uniform: wgpu::Buffer,
    /// With mini-batches (each chunk one batch): the reduce pass over this chunk's rows alone.
    reduce_alone: Option<wgpu::BindGroup>,
}

/// The fused kernel for one number of slots, bound to every chunk.
struct SlotKernel {
    slots: usize,
    pipeline: wgpu::ComputePipeline,
    bind_groups: Vec<wgpu::BindGroup>,
}

/// The per-point pass and its reduction over all the data.
pub(super) struct PerPointPass {
    params: u32,
    /// Widest first; the last has one slot.
    fused: Vec<SlotKernel>,
    reduce: wgpu::ComputePipeline,
    chunks: Vec<DataChunk>,
    reduce_group: wgpu::BindGroup,
    _partials: wgpu::Buffer,
}

/// The slot counts worth building for `runs` runs of `shape`: powers of two and the widest
/// the shape takes, widest first (a round with fewer runs left takes a narrower kernel).
fn slot_counts(shape: &Shape, runs: usize) -> Vec<usize> {
    let widest = shape.max_slots().min(runs).min(MAX_SLOTS);
    let mut counts: Vec<usize> = (0..)
        .map(|e| 1usize << e)
        .take_while(|&s| s < widest)
        .chain([widest])
        .collect();
    counts.reverse();
    counts
}

impl PerPointPass {
    /// Builds the kernels for `shape` (which must fit them) and `runs` runs, uploads `data` and
    /// binds it to the runs' buffers. With `batched`, each chunk is a mini-batch that a step
    /// may take alone ([`PerPointPass::record_batch`]).
    pub fn new(
        ctx: &GpuContext,
        shape: &Shape,
        data: &Points,
        options: GpuOptions,
        runs: usize,
        buffers: RunBuffers<'_>,
        batched: bool,
    ) -> Result<Self> {
        shape.check().map_err(Error::Unsupported)?;
        let reduction = options.reduction(ctx);
        let reads = options.weight_reads(ctx, shape);
        let kernels = slot_counts(shape, runs)
            .into_iter()
            .map(|slots| {
                Ok((
                    slots,
                    pipelines::fused(ctx, shape, reduction, reads, slots)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let reduce = pipelines::reduce(ctx, shape, reduction)?;
        let pp = shape.params as u64 + 1;
        let cut = chunks::cut(
            ctx,
            data.len(),
            data.inputs() + data.outputs(),
            chunks::points_per_group(ctx),
            runs as u64 * pp * 4,
            options,
        )?;
        let pass = ctx.checked("allocating GPU buffers", || {
            use wgpu::BufferUsages as U;
            let partials = buffers::empty(
                ctx,
                "partials",
                u64::from(cut.rows) * runs as u64 * pp * 4,
                U::STORAGE,
            );
            let rows_uniform = |count, first| {
                let rows = RowsUniform {
                    count,
                    first,
                    stride: cut.rows,
                    _pad: 0,
                };
                buffers::init(ctx, "rows", bytemuck::bytes_of(&rows), U::UNIFORM)
            };
            let chunks: Vec<DataChunk> = cut
                .chunks
                .iter()
                .zip(cut.upload(ctx, data))
                .map(|(chunk, data_buffer)| {
                    let uniform = buffers::init(
                        ctx,
                        "chunk",
                        bytemuck::bytes_of(&chunk.uniform(cut.rows)),
                        U::UNIFORM,
                    );
                    let reduce_alone = batched.then(|| {
                        let rows = rows_uniform(chunk.groups, chunk.first_row);
                        reduce.bind(ctx, &[&partials, buffers.totals, &rows, buffers.active])
                    });
                    DataChunk {
                        groups: chunk.groups,
                        data: data_buffer,
                        uniform,
                        reduce_alone,
                    }
                })
                .collect();
            let fused = kernels
                .iter()
                .map(|(slots, kernel)| SlotKernel {
                    slots: *slots,
                    pipeline: kernel.pipeline.clone(),
                    bind_groups: chunks
                        .iter()
                        .map(|chunk| {
                            kernel.bind(
                                ctx,
                                &[
                                    &chunk.data,
                                    buffers.params,
                                    &partials,
                                    &chunk.uniform,
                                    buffers.states,
                                    buffers.active,
                                ],
                            )
                        })
                        .collect(),
                })
                .collect();
            let rows = rows_uniform(cut.rows, 0);
            let reduce_group =
                reduce.bind(ctx, &[&partials, buffers.totals, &rows, buffers.active]);
            PerPointPass {
                params: shape.params as u32,
                fused,
                reduce: reduce.pipeline.clone(),
                chunks,
                reduce_group,
                _partials: partials,
            }
        })?;
        log::info!(
            "GPU data in {} chunk(s) of up to {} points",
            pass.chunks.len(),
            cut.largest()
        );
        Ok(pass)
    }

    /// Records the fused pass over every chunk and the reduce pass, for the first `active`
    /// runs of the active list: the narrowest kernel that steps them all from one read of
    /// each point (or the widest there is, over several rows of workgroups).
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>, active: usize) {
        let (kernel, rows) = self.kernel_for(active);
        pass.set_pipeline(&kernel.pipeline);
        for (chunk, group) in self.chunks.iter().zip(&kernel.bind_groups) {
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(chunk.groups, rows, 1);
        }
        pass.set_pipeline(&self.reduce);
        pass.set_bind_group(0, &self.reduce_group, &[]);
        pass.dispatch_workgroups(self.params + 1, active as u32, 1);
    }

    /// The narrowest fused kernel that steps `active` runs from one read of each point (or
    /// the widest there is, over several rows of workgroups), and its rows.
    fn kernel_for(&self, active: usize) -> (&SlotKernel, u32) {
        let kernel = self
            .fused
            .iter()
            .rev()
            .find(|k| k.slots >= active)
            .unwrap_or(&self.fused[0]);
        (kernel, active.div_ceil(kernel.slots) as u32)
    }

    /// Records one step's pass over chunk `batch` alone (a mini-batch, with `batched`) for
    /// the first `active` runs of the active list: the fused kernel over its points and the
    /// reduce pass over its rows.
    pub fn record_chunk(&self, pass: &mut wgpu::ComputePass<'_>, active: usize, batch: usize) {
        let (kernel, rows) = self.kernel_for(active);
        let chunk = &self.chunks[batch];
        let reduce = chunk
            .reduce_alone
            .as_ref()
            .expect("record_chunk is only called on a batched pass");
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &kernel.bind_groups[batch], &[]);
        pass.dispatch_workgroups(chunk.groups, rows, 1);
        pass.set_pipeline(&self.reduce);
        pass.set_bind_group(0, reduce, &[]);
        pass.dispatch_workgroups(self.params + 1, active as u32, 1);
    }

    /// Every chunk's data buffer, in order.
    pub fn data_buffers(&self) -> Vec<&wgpu::Buffer> {
        self.chunks.iter().map(|c| &c.data).collect()
    }

    /// Runs the widest fused kernel steps from one read of each point.
    pub fn widest_slots(&self) -> usize {
        self.fused[0].slots
    }

    /// Data chunks (one storage binding and one dispatch each).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Workgroups over all chunks (one row of partial sums each).
    pub fn workgroups(&self) -> u32 {
        self.chunks.iter().map(|c| c.groups).sum()
    }
}

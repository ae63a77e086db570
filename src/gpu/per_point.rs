//! The gradient pass for narrow networks (shaders/fused_step.wgsl): each thread takes points in
//! turn with every activation and a private copy of every gradient sum, each workgroup writes
//! one row of partial sums, and the reduce pass adds the rows into the step's totals (the
//! gradient of the SSE, then the SSE). The fastest pass while the network fits a thread:
//! `shaders::MAX_PARAMS` parameters and `shaders::MAX_NODES` nodes.

use super::buffers::{self, RowsUniform};
use super::chunks::{self, GpuOptions};
use super::context::GpuContext;
use super::pipelines;
use super::shaders::Shape;
use crate::data::Dataset;
use crate::error::{Error, Result};

/// One slice of the data in its own storage binding.
struct DataChunk {
    groups: u32,
    bind_group: wgpu::BindGroup,
    _data: wgpu::Buffer,
    _uniform: wgpu::Buffer,
}

/// The per-point pass and its reduction over all the data.
pub(super) struct PerPointPass {
    params: u32,
    fused: wgpu::ComputePipeline,
    reduce: wgpu::ComputePipeline,
    chunks: Vec<DataChunk>,
    reduce_group: wgpu::BindGroup,
    _partials: wgpu::Buffer,
}

impl PerPointPass {
    /// Builds the kernels for `shape` (which must fit them), uploads `data` and binds it to
    /// `params`, `totals` and `state`.
    pub fn new(
        ctx: &GpuContext,
        shape: &Shape,
        data: &Dataset,
        options: GpuOptions,
        params: &wgpu::Buffer,
        totals: &wgpu::Buffer,
        state: &wgpu::Buffer,
    ) -> Result<Self> {
        shape.check().map_err(Error::Unsupported)?;
        let reduction = options.reduction(ctx);
        let fused = pipelines::fused(ctx, shape, reduction, options.weight_reads(ctx, shape))?;
        let reduce = pipelines::reduce(ctx, shape, reduction)?;
        let pp = shape.params as u64 + 1;
        let cut = chunks::cut(
            ctx,
            data.len(),
            data.inputs() + data.outputs(),
            chunks::points_per_group(ctx),
            pp * 4,
            options,
        )?;
        let columns = data.column_slices();
        let pass = ctx.checked("allocating GPU buffers", || {
            use wgpu::BufferUsages as U;
            let partials =
                buffers::empty(ctx, "partials", u64::from(cut.rows) * pp * 4, U::STORAGE);
            let chunks: Vec<DataChunk> = cut
                .chunks
                .iter()
                .zip(cut.upload(ctx, &columns))
                .map(|(chunk, data_buffer)| {
                    let uniform = buffers::init(
                        ctx,
                        "chunk",
                        bytemuck::bytes_of(&chunk.uniform(cut.rows)),
                        U::UNIFORM,
                    );
                    let bind_group =
                        fused.bind(ctx, &[&data_buffer, params, &partials, &uniform, state]);
                    DataChunk {
                        groups: chunk.groups,
                        bind_group,
                        _data: data_buffer,
                        _uniform: uniform,
                    }
                })
                .collect();
            let rows = buffers::init(
                ctx,
                "rows",
                bytemuck::bytes_of(&RowsUniform {
                    count: cut.rows,
                    _pad: [0; 3],
                }),
                U::UNIFORM,
            );
            let reduce_group = reduce.bind(ctx, &[&partials, totals, &rows]);
            PerPointPass {
                params: shape.params as u32,
                fused: fused.pipeline.clone(),
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

    /// Records the fused pass over every chunk and the reduce pass.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.fused);
        for chunk in &self.chunks {
            pass.set_bind_group(0, &chunk.bind_group, &[]);
            pass.dispatch_workgroups(chunk.groups, 1, 1);
        }
        pass.set_pipeline(&self.reduce);
        pass.set_bind_group(0, &self.reduce_group, &[]);
        pass.dispatch_workgroups(self.params + 1, 1, 1);
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

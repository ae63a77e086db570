//! The GPU memory-bandwidth yardstick: the time the adapter needs just to read a dataset once
//! (shaders/read_once.wgsl), chunked exactly as the training engine chunks it.

use std::time::{Duration, Instant};

use super::buffers;
use super::buffers::CountUniform;
use super::chunks::{self, GpuOptions};
use super::context::GpuContext;
use super::pipelines;
use crate::data::Dataset;
use crate::error::Result;

/// The data uploaded once, with the read-only kernel bound to every chunk.
pub struct ReadOnce {
    ctx: GpuContext,
    pipeline: wgpu::ComputePipeline,
    /// Bind group and workgroup count per chunk; the buffers are kept alive alongside.
    chunks: Vec<(wgpu::BindGroup, u32)>,
    _buffers: Vec<wgpu::Buffer>,
    partials: wgpu::Buffer,
    rows: u32,
}

impl ReadOnce {
    /// Uploads `data` in the chunks the training engine would use.
    pub fn new(ctx: GpuContext, data: &Dataset, options: GpuOptions) -> Result<Self> {
        let kernel = pipelines::read_once(&ctx)?;
        let columns = data.column_slices();
        let cut = chunks::cut(
            &ctx,
            data.len(),
            columns.len(),
            chunks::points_per_group(&ctx),
            4,
            options,
        )?;
        let rows = cut.rows;
        ctx.checked("allocating the read-only probe's buffers", || {
            use wgpu::BufferUsages as U;
            let partials = buffers::empty(
                &ctx,
                "partials",
                u64::from(rows) * 4,
                U::STORAGE | U::COPY_SRC,
            );
            let mut chunks = Vec::new();
            let mut kept = Vec::new();
            for (chunk, data_buffer) in cut.chunks.iter().zip(cut.upload(&ctx, &columns)) {
                let count = CountUniform {
                    values: (chunk.points() * columns.len()) as u32,
                    partial_row: chunk.first_row,
                    _pad: [0; 2],
                };
                let uniform = buffers::init(&ctx, "count", bytemuck::bytes_of(&count), U::UNIFORM);
                let group = kernel.bind(&ctx, &[&data_buffer, &partials, &uniform]);
                chunks.push((group, chunk.groups));
                kept.extend([data_buffer, uniform]);
            }
            ReadOnce {
                pipeline: kernel.pipeline,
                chunks,
                _buffers: kept,
                partials,
                rows,
                ctx: ctx.clone(),
            }
        })
    }

    /// One pass, and the sum of every value it read (in f64 over the workgroups' f32 sums): a
    /// check that the probe reads all the data.
    pub fn sum(&self) -> Result<f64> {
        self.time_pass(1)?;
        let bytes = buffers::read(&self.ctx, &self.partials, 0, u64::from(self.rows) * 4)?;
        let partials: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
        Ok(partials.iter().map(|&v| f64::from(v)).sum())
    }

    /// The time of one read of all the data: `passes` passes in one submission, waited for,
    /// divided by `passes` (as the engine runs many steps per submission).
    pub fn time_pass(&self, passes: usize) -> Result<Duration> {
        let start = Instant::now();
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&self.pipeline);
            for _ in 0..passes {
                for (group, groups) in &self.chunks {
                    pass.set_bind_group(0, group, &[]);
                    pass.dispatch_workgroups(*groups, 1, 1);
                }
            }
        }
        self.ctx.queue.submit([encoder.finish()]);
        self.ctx.wait()?;
        Ok(start.elapsed() / passes.max(1) as u32)
    }
}

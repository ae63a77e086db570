//! The GPU's yardsticks: the time the adapter needs just to read a dataset once
//! (shaders/read_once.wgsl), chunked exactly as the training engine chunks it; and its f32
//! arithmetic peak (shaders/fma_peak.wgsl), measured as the CPU's is.

use std::time::{Duration, Instant};

use super::buffers;
use super::buffers::CountUniform;
use super::chunks::{self, GpuOptions};
use super::context::GpuContext;
use super::pipelines;
use super::shaders::{FMA_CHAINS, FMA_ROUNDS, POINT_WG};
use crate::data::Points;
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
    pub fn new(ctx: GpuContext, data: &Points, options: GpuOptions) -> Result<Self> {
        let kernel = pipelines::read_once(&ctx, options.reduction(&ctx))?;
        let cut = chunks::cut(
            &ctx,
            data.len(),
            data.width(),
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
            for (chunk, data_buffer) in cut.chunks.iter().zip(cut.upload(&ctx, data)) {
                let count = CountUniform {
                    values: (chunk.points() * data.width()) as u32,
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

/// Threads of one arithmetic-yardstick dispatch at the most (64 MiB of results).
const MAX_FMA_THREADS: u32 = 1 << 24;

/// This adapter's f32 arithmetic peak in flop/s, measured: threads running independent chains
/// of multiply-adds (shaders/fma_peak.wgsl), more of them (then more dispatches in one
/// submission) each try until a submission takes 50 ms, the best rate of three submissions at
/// that size. Short submissions would time the submit and the wait, not the arithmetic.
pub fn fma_peak(ctx: &GpuContext) -> Result<f64> {
    let kernel = pipelines::fma_peak(ctx)?;
    let max_groups = ctx
        .limits
        .max_compute_workgroups_per_dimension
        .min(MAX_FMA_THREADS / POINT_WG);
    let per_thread = f64::from(FMA_ROUNDS * FMA_CHAINS * 4 * 2);
    let (mut groups, mut dispatches) = (64u32.min(max_groups), 1u32);
    loop {
        let threads = groups * POINT_WG;
        let values = ctx.checked("allocating the arithmetic yardstick's buffer", || {
            let mut init = vec![0.0f32; threads as usize + 2];
            init[0] = 0.999_999;
            init[1] = 1e-7;
            buffers::init(
                ctx,
                "fma values",
                bytemuck::cast_slice(&init),
                wgpu::BufferUsages::STORAGE,
            )
        })?;
        let group = kernel.bind(ctx, &[&values]);
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let start = Instant::now();
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(&kernel.pipeline);
                pass.set_bind_group(0, &group, &[]);
                for _ in 0..dispatches {
                    pass.dispatch_workgroups(groups, 1, 1);
                }
            }
            ctx.queue.submit([encoder.finish()]);
            ctx.wait()?;
            best = best.min(start.elapsed().as_secs_f64());
        }
        if best >= 0.05 || dispatches >= 1024 {
            let flops = f64::from(threads) * f64::from(dispatches) * per_thread;
            return Ok(flops / best);
        }
        if groups < max_groups {
            groups = groups.saturating_mul(4).min(max_groups);
        } else {
            dispatches *= 4;
        }
    }
}

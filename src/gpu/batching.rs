//! Mini-batches formed on the device. The training data is uploaded once; each epoch the
//! host draws the permutation ([`BatchPlan::permutation`], the one the CPU path draws) and
//! uploads it (four bytes a point), and the gather kernel copies every batch's points into the
//! batch's own chunk, which the gradient pass then reads as it reads any chunk. No batch
//! passes through the host.

use super::buffers::{self, GatherUniform};
use super::chunks::{self, GpuOptions};
use super::context::GpuContext;
use super::pipelines;
use super::shaders::POINT_WG;
use crate::batches::BatchPlan;
use crate::data::Points;
use crate::error::{Error, Result};

/// Gather dispatches (batches times source chunks) one engine records at most per epoch.
const MAX_GATHERS: usize = 1 << 22;

/// The gather of every batch of an epoch, bound once.
pub(super) struct DeviceBatches {
    plan: BatchPlan,
    gather: wgpu::ComputePipeline,
    order: wgpu::Buffer,
    /// Per batch and source chunk: the bind group and its workgroups.
    dispatches: Vec<(wgpu::BindGroup, u32)>,
    /// The epoch whose batches are on the device.
    epoch: Option<usize>,
    /// Held for the bind groups: the training data's chunks.
    _sources: Vec<wgpu::Buffer>,
}

impl DeviceBatches {
    /// Uploads `data` and binds the gather of each batch of `plan` into `batch_buffers`
    /// (batch `b`'s chunk at `[b]`, its columns one after another).
    pub fn new(
        ctx: &GpuContext,
        plan: BatchPlan,
        data: &Points,
        batch_buffers: &[&wgpu::Buffer],
        options: GpuOptions,
    ) -> Result<Self> {
        if batch_buffers.len() != plan.per_epoch() {
            return Err(Error::Unsupported(format!(
                "a batch of {} points does not fit in one storage binding on this adapter",
                plan.size()
            )));
        }
        let columns = data.inputs() + data.outputs();
        let source_options = GpuOptions {
            max_chunk_points: None,
            ..options
        };
        let cut = chunks::cut(ctx, data.len(), columns, 1, 0, source_options)?;
        if cut.chunks.len() * plan.per_epoch() > MAX_GATHERS {
            return Err(Error::Unsupported(format!(
                "mini-batches of {} points over {} data chunks: more gathers per epoch than \
                 {MAX_GATHERS}; take larger batches",
                plan.size(),
                cut.chunks.len()
            )));
        }
        let kernel = pipelines::gather(ctx)?;
        let align = u64::from(ctx.limits.min_storage_buffer_offset_alignment).max(4);
        let max_groups = ctx.limits.max_compute_workgroups_per_dimension;
        ctx.checked("allocating the mini-batches' buffers", || {
            use wgpu::BufferUsages as U;
            let sources = cut.upload(ctx, data);
            let order = buffers::empty(
                ctx,
                "order",
                plan.points() as u64 * 4,
                U::STORAGE | U::COPY_DST,
            );
            let mut dispatches = Vec::with_capacity(batch_buffers.len() * sources.len());
            for (b, batch) in batch_buffers.iter().enumerate() {
                let range = plan.range(b);
                // The batch's positions in the order, bound from an aligned offset.
                let offset = (range.start as u64 * 4) / align * align;
                let size = range.end as u64 * 4 - offset;
                let groups = (range.len() as u32).div_ceil(POINT_WG).clamp(1, max_groups);
                for (chunk, source) in cut.chunks.iter().zip(&sources) {
                    let uniform = GatherUniform {
                        first: (range.start - (offset / 4) as usize) as u32,
                        points: range.len() as u32,
                        source_start: chunk.start as u32,
                        source_points: chunk.points() as u32,
                    };
                    let uniform =
                        buffers::init(ctx, "gather", bytemuck::bytes_of(&uniform), U::UNIFORM);
                    let group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some("gather"),
                        layout: &kernel.layout,
                        entries: &[
                            entry(0, source.as_entire_buffer_binding()),
                            entry(
                                1,
                                wgpu::BufferBinding {
                                    buffer: &order,
                                    offset,
                                    size: std::num::NonZeroU64::new(size),
                                },
                            ),
                            entry(2, batch.as_entire_buffer_binding()),
                            entry(3, uniform.as_entire_buffer_binding()),
                        ],
                    });
                    dispatches.push((group, groups));
                }
            }
            DeviceBatches {
                plan,
                gather: kernel.pipeline.clone(),
                order,
                dispatches,
                epoch: None,
                _sources: sources,
            }
        })
    }

    /// The plan of the batches.
    pub fn plan(&self) -> &BatchPlan {
        &self.plan
    }

    /// Makes the batches on the device those of step `step`'s epoch: its order uploaded and
    /// every batch gathered, in the queue before the steps that read them.
    pub fn load_epoch_of(&mut self, ctx: &GpuContext, step: usize) {
        let epoch = self.plan.epoch_of(step);
        if self.epoch == Some(epoch) {
            return;
        }
        let order = self.plan.permutation(epoch);
        ctx.queue
            .write_buffer(&self.order, 0, bytemuck::cast_slice(&order));
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&self.gather);
            for (group, groups) in &self.dispatches {
                pass.set_bind_group(0, group, &[]);
                pass.dispatch_workgroups(*groups, 1, 1);
            }
        }
        ctx.queue.submit([encoder.finish()]);
        self.epoch = Some(epoch);
    }
}

fn entry(binding: u32, buffer: wgpu::BufferBinding<'_>) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: wgpu::BindingResource::Buffer(buffer),
    }
}

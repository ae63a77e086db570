//! The loss landscape on the GPU: the SSE of many parameter vectors in one dispatch per data
//! chunk (shaders/landscape.wgsl), a batch of vectors at a time.

use super::buffers;
use super::buffers::ChunkUniform;
use super::chunks::{self, GpuOptions};
use super::context::GpuContext;
use super::pipelines;
use super::shaders::{Shape, POINT_WG};
use crate::data::Points;
use crate::error::{Error, Result};
use crate::network::Network;

/// Points each thread takes per parameter vector: enough that a vector's workgroups do not
/// outnumber its points many times over on small data.
const POINTS_PER_THREAD: usize = 64;

/// The data uploaded and the kernel built once, for any number of batches of parameter
/// vectors of one shape.
pub struct SseOfMany {
    ctx: GpuContext,
    kernel: pipelines::Kernel,
    params: usize,
    /// Per chunk: its buffer, its uniform and the workgroups per vector.
    chunks: Vec<(wgpu::Buffer, ChunkUniform, usize)>,
}

impl SseOfMany {
    /// Builds the kernel for `net`'s shape and uploads `data`.
    pub fn new(
        ctx: &GpuContext,
        net: &Network,
        data: &Points,
        options: GpuOptions,
    ) -> Result<Self> {
        let shape = Shape::of(net);
        shape.check().map_err(Error::Unsupported)?;
        let kernel = pipelines::landscape(
            ctx,
            &shape,
            options.reduction(ctx),
            options.weight_reads(ctx, &shape),
        )?;
        // Each workgroup writes one partial per vector, into a buffer of its own per batch.
        let cut = chunks::cut(
            ctx,
            data.len(),
            data.width(),
            POINT_WG as usize * POINTS_PER_THREAD,
            0,
            options,
        )?;
        let chunks = ctx.checked("uploading the landscape's data", || {
            cut.upload(ctx, data)
                .into_iter()
                .zip(&cut.chunks)
                .map(|(buffer, chunk)| (buffer, chunk.uniform(cut.rows), chunk.groups as usize))
                .collect()
        })?;
        Ok(SseOfMany {
            ctx: ctx.clone(),
            kernel,
            params: shape.params,
            chunks,
        })
    }

    /// The SSE of each of `nets` (all of the shape this was built for) over the data.
    pub fn sse(&self, nets: &[Network]) -> Result<Vec<f64>> {
        let sets: Vec<f32> = nets
            .iter()
            .flat_map(|n| n.params().into_iter().map(|p| p as f32))
            .collect();
        if sets.len() != nets.len() * self.params {
            return Err(Error::InvalidArgument(
                "every network of a landscape must have the same shape".into(),
            ));
        }
        // A batch of vectors: at most the dispatch limit, and few enough partials and
        // parameters to stay far below any binding limit.
        let max_groups = self.ctx.limits.max_compute_workgroups_per_dimension as usize;
        let batch = max_groups.min(4096);
        let mut totals = vec![0.0f64; nets.len()];
        for (chunk, uniform, groups_x) in &self.chunks {
            for first_set in (0..nets.len()).step_by(batch) {
                let count = batch.min(nets.len() - first_set);
                let sums = run_batch(
                    &self.ctx,
                    &self.kernel,
                    chunk,
                    *uniform,
                    &sets[first_set * self.params..(first_set + count) * self.params],
                    *groups_x,
                    count,
                )?;
                for (total, sum) in totals[first_set..].iter_mut().zip(sums) {
                    *total += sum;
                }
            }
        }
        Ok(totals)
    }
}

/// One dispatch of `count` vectors over one chunk; the SSE of each.
fn run_batch(
    ctx: &GpuContext,
    kernel: &pipelines::Kernel,
    chunk: &wgpu::Buffer,
    uniform: ChunkUniform,
    sets: &[f32],
    groups_x: usize,
    count: usize,
) -> Result<Vec<f64>> {
    use wgpu::BufferUsages as U;
    let partial_bytes = (groups_x * count * 4) as u64;
    let (sets_buffer, partials, uniform_buffer) =
        ctx.checked("allocating landscape buffers", || {
            (
                buffers::init(ctx, "sets", bytemuck::cast_slice(sets), U::STORAGE),
                buffers::empty(ctx, "partials", partial_bytes, U::STORAGE | U::COPY_SRC),
                buffers::init(ctx, "chunk", bytemuck::bytes_of(&uniform), U::UNIFORM),
            )
        })?;
    let group = kernel.bind(ctx, &[chunk, &sets_buffer, &partials, &uniform_buffer]);
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(groups_x as u32, count as u32, 1);
    }
    ctx.queue.submit([encoder.finish()]);
    let bytes = buffers::read(ctx, &partials, 0, partial_bytes)?;
    let values: &[f32] = bytemuck::cast_slice(&bytes);
    Ok(values
        .chunks_exact(groups_x)
        .map(|row| row.iter().map(|&v| f64::from(v)).sum())
        .collect())
}

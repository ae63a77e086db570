//! How data is cut for the GPU, in one place for every kernel that reads it (training,
//! prediction, the landscape, the bandwidth probe): each chunk is one storage binding and one
//! dispatch, sized by the adapter's limits, and each workgroup may write one row of partial
//! sums into a binding that all chunks share.

use super::buffers;
use super::context::GpuContext;
use super::shaders::{Reduction, Shape, WeightReads, POINT_WG};
use crate::data::ColumnBlocks;
use crate::error::{Error, Result};

/// Points each thread of the fused pass takes in turn: enough to amortise the workgroup's
/// reduction, few enough that its serial f32 sums stay short.
const POINTS_PER_THREAD: usize = 16;
/// The same on a software adapter (lavapipe), which runs a workgroup's threads as a loop on
/// one CPU core: there the per-workgroup reductions are the cost to cut, not occupancy to
/// gain (measured at 1M points: 16 -> 79 ms per step, 64 -> 47 ms, 256 -> 40 ms, 1024 -> 45 ms).
const SOFTWARE_POINTS_PER_THREAD: usize = 256;
/// Points per workgroup of a pass over the data (the training step's, prediction's and the
/// bandwidth probe's) on this adapter.
pub(super) fn points_per_group(ctx: &GpuContext) -> usize {
    let per_thread = if ctx.adapter.software {
        SOFTWARE_POINTS_PER_THREAD
    } else {
        POINTS_PER_THREAD
    };
    POINT_WG as usize * per_thread
}

/// Settings of the GPU path that tests (and unusual adapters) may change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuOptions {
    /// At most this many points per data chunk (one storage binding and one dispatch each).
    /// `None`: as many as the adapter's binding and buffer size limits allow.
    pub max_chunk_points: Option<usize>,
    /// At most this many bytes in one storage binding; `None`: the adapter's limit. Tests
    /// lower it so that the chunking of the data and of the partial sums runs on small sets.
    pub max_binding_bytes: Option<u64>,
    /// Train with the layered kernels whatever the shape, not only where the per-point kernel
    /// cannot take it (tests run both families on one shape).
    pub layered: bool,
    /// Sum within workgroups through workgroup memory even where the adapter has subgroup
    /// operations (tests run both ways on one adapter).
    pub workgroup_sums: bool,
    /// Read the weights from workgroup memory at every point even where the per-point
    /// kernels would keep them in registers (tests run both forms on one adapter).
    pub shared_weights: bool,
}

impl GpuOptions {
    /// Where the per-point kernels read the weights of `shape` on `ctx`.
    pub(super) fn weight_reads(&self, ctx: &GpuContext, shape: &Shape) -> WeightReads {
        if self.shared_weights {
            WeightReads::Shared
        } else {
            WeightReads::choose(ctx.adapter.software, shape.params)
        }
    }

    /// How the kernels sum within a workgroup on `ctx`: with subgroup operations where the
    /// device has them and these options allow them.
    pub(super) fn reduction(&self, ctx: &GpuContext) -> Reduction {
        if ctx.subgroups && !self.workgroup_sums {
            Reduction::Subgroups
        } else {
            Reduction::Workgroup
        }
    }
}

/// The largest storage binding (and buffer) on this adapter, as `options` may lower it.
pub(super) fn binding_bytes(ctx: &GpuContext, options: GpuOptions) -> u64 {
    ctx.limits
        .max_storage_buffer_binding_size
        .min(ctx.limits.max_buffer_size)
        .min(options.max_binding_bytes.unwrap_or(u64::MAX))
}

/// One chunk of the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Chunk {
    pub start: usize,
    pub end: usize,
    /// Workgroups of the dispatch over this chunk.
    pub groups: u32,
    /// The first row of partial sums this chunk's workgroups write.
    pub first_row: u32,
}

impl Chunk {
    pub fn points(&self) -> usize {
        self.end - self.start
    }

    /// Its `Chunk` uniform (the data is stored column by column, `points` apart), where all
    /// chunks together write `rows` rows of partial sums.
    pub fn uniform(&self, rows: u32) -> buffers::ChunkUniform {
        buffers::ChunkUniform {
            points: self.points() as u32,
            stride: self.points() as u32,
            partial_row: self.first_row,
            rows,
        }
    }
}

/// The chunks of a data set and the rows of partial sums all of them write together.
#[derive(Clone, Debug)]
pub(super) struct Chunks {
    pub chunks: Vec<Chunk>,
    pub rows: u32,
}

/// Cuts `points` points of `columns` values each into chunks: as many points as one binding
/// holds (or `options` allows), and workgroups of `per_group` points each, where every
/// workgroup writes a row of `row_bytes` (0: none) into one shared binding. When the chunks
/// would want more rows than that binding holds, each gets fewer workgroups (the kernels loop
/// over their points, so fewer workgroups is only less parallel).
pub(super) fn cut(
    ctx: &GpuContext,
    points: usize,
    columns: usize,
    per_group: usize,
    row_bytes: u64,
    options: GpuOptions,
) -> Result<Chunks> {
    let binding = binding_bytes(ctx, options);
    let point_bytes = columns.max(1) as u64 * 4;
    if binding < point_bytes {
        return Err(Error::Unsupported(format!(
            "one point's {columns} values ({point_bytes} bytes) do not fit in one storage \
             binding of {binding} bytes on this adapter"
        )));
    }
    let by_binding = (binding / point_bytes) as usize;
    let per_chunk = options
        .max_chunk_points
        .unwrap_or(usize::MAX)
        .min(by_binding)
        .max(1);
    let count = points.div_ceil(per_chunk).max(1);
    // Rows a binding holds (with no rows written, no limit).
    let max_rows = binding
        .checked_div(row_bytes)
        .unwrap_or(u64::MAX)
        .min(u64::from(u32::MAX)) as usize;
    if max_rows < count {
        return Err(Error::Unsupported(format!(
            "the data needs {count} chunks of partial sums of {row_bytes} bytes each, more \
             than one storage binding of {binding} bytes holds: the network is too large for \
             this adapter"
        )));
    }
    let rows_per_chunk = (max_rows / count).max(1) as u32;
    let max_groups = ctx.limits.max_compute_workgroups_per_dimension as usize;
    let mut chunks = Vec::with_capacity(count);
    let mut rows = 0u32;
    for start in (0..points).step_by(per_chunk) {
        let end = (start + per_chunk).min(points);
        let wanted = (end - start)
            .div_ceil(per_group.max(1))
            .clamp(1, max_groups) as u32;
        let groups = wanted.min(rows_per_chunk);
        chunks.push(Chunk {
            start,
            end,
            groups,
            first_row: rows,
        });
        rows += groups;
    }
    Ok(Chunks { chunks, rows })
}

impl Chunks {
    /// Uploads each chunk of `columns` into a buffer of its own, column by column.
    pub fn upload<C: ColumnBlocks + ?Sized>(
        &self,
        ctx: &GpuContext,
        columns: &C,
    ) -> Vec<wgpu::Buffer> {
        self.chunks
            .iter()
            .map(|c| buffers::upload_columns(ctx, columns, c.start, c.end))
            .collect()
    }

    /// The largest chunk's points.
    pub fn largest(&self) -> usize {
        self.chunks.iter().map(Chunk::points).max().unwrap_or(0)
    }
}

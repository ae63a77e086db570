//! Every Rust mirror of a WGSL struct, creating and filling buffers, and reading them back.

use std::sync::{Arc, Mutex};

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

use super::context::GpuContext;
use crate::data::ColumnBlocks;
use crate::error::{Error, Result};

/// `Chunk` in fused_step.wgsl, predict.wgsl and landscape.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct ChunkUniform {
    pub points: u32,
    pub stride: u32,
    pub partial_row: u32,
    /// Rows of partial sums over all chunks (the distance between one value's rows).
    pub rows: u32,
}

/// `Batch` in layered.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BatchUniform {
    pub start: u32,
    pub count: u32,
    pub stride: u32,
    pub _pad: u32,
}

/// `Count` in read_once.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct CountUniform {
    pub values: u32,
    pub partial_row: u32,
    pub _pad: [u32; 2],
}

/// `Rows` in reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct RowsUniform {
    /// Rows summed: every chunk's, or one mini-batch's.
    pub count: u32,
    /// The first of them.
    pub first: u32,
    /// Rows over all chunks.
    pub stride: u32,
    pub _pad: u32,
}

/// `Gather` in gather.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct GatherUniform {
    pub first: u32,
    pub points: u32,
    pub source_start: u32,
    pub source_points: u32,
}

/// `Step` in update.wgsl (one per run, in a storage buffer).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct StepUniform {
    pub learning_rate: f32,
    pub scale: f32,
    pub tolerance: f32,
    pub limit: f32,
    /// 0 gradient descent, 1 momentum, 2 Nesterov, 3 Adam.
    pub rule: u32,
    /// Updates the run made before this submission.
    pub updates: u32,
    /// The momentum, or Adam's beta1.
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// 0 constant, 1 step decay, 2 exponential decay, 3 cosine.
    pub schedule: u32,
    pub every: u32,
    pub factor: f32,
    pub total: u32,
}

/// `State` in update.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct StateBlock {
    pub applied: u32,
    pub stop: u32,
    pub stop_loss: f32,
    pub stop_norm: f32,
}

/// A buffer initialised from `contents`.
pub fn init(
    ctx: &GpuContext,
    label: &str,
    contents: &[u8],
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage,
        })
}

/// An uninitialised (zeroed) buffer.
pub fn empty(ctx: &GpuContext, label: &str, bytes: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes.max(4),
        usage,
        mapped_at_creation: false,
    })
}

/// Bytes written to the device per piece when uploading data: the staging memory an upload
/// holds at once.
const UPLOAD_PIECE: usize = 32 << 20;

/// A storage buffer holding points `start..end` of every column, one column after another.
/// Written piece by piece, each piece's staging copy released before the next, so that an
/// upload never holds a second full copy of the data (on a software adapter, where device
/// memory is host memory, that would be a third copy with the host's own).
pub fn upload_columns<C: ColumnBlocks + ?Sized>(
    ctx: &GpuContext,
    columns: &C,
    start: usize,
    end: usize,
) -> wgpu::Buffer {
    let n = end - start;
    let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("data chunk"),
        size: (columns.width() * n * 4).max(4) as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let per_piece = (UPLOAD_PIECE / 4 / columns.width().max(1)).max(1);
    for piece in (start..end).step_by(per_piece) {
        let piece_end = (piece + per_piece).min(end);
        columns.with_block(piece..piece_end, |block| {
            for (c, column) in block.iter().enumerate() {
                let offset = ((c * n + piece - start) * 4) as u64;
                ctx.queue
                    .write_buffer(&buffer, offset, bytemuck::cast_slice(column));
            }
        });
        ctx.queue.submit([]);
        // A failed wait means a lost device; the first step reports it.
        let _ = ctx.device.poll(wgpu::PollType::wait_indefinitely());
    }
    buffer
}

/// Copies `bytes` from `source` (at `offset`) to the host.
pub fn read(ctx: &GpuContext, source: &wgpu::Buffer, offset: u64, bytes: u64) -> Result<Vec<u8>> {
    let staging = empty(
        ctx,
        "staging",
        bytes,
        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
    );
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(source, offset, &staging, 0, bytes);
    ctx.queue.submit([encoder.finish()]);
    read_staging(ctx, &staging, bytes)
}

/// Maps a staging buffer whose copy has been submitted and returns its first `bytes` bytes.
pub fn read_staging(ctx: &GpuContext, staging: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
    let slice = staging.slice(..bytes);
    let outcome: Arc<Mutex<Option<std::result::Result<(), wgpu::BufferAsyncError>>>> =
        Arc::new(Mutex::new(None));
    let slot = outcome.clone();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        if let Ok(mut s) = slot.lock() {
            *s = Some(r);
        }
    });
    ctx.wait()?;
    let mapped = outcome.lock().ok().and_then(|mut s| s.take());
    match mapped {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(Error::Gpu(format!("reading a GPU buffer failed: {e}"))),
        None => return Err(Error::Gpu("reading a GPU buffer never completed".into())),
    }
    let data = slice
        .get_mapped_range()
        .map_err(|e| Error::Gpu(format!("reading a GPU buffer failed: {e:?}")))?
        .to_vec();
    staging.unmap();
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_structs_are_16_bytes_as_in_wgsl() {
        assert_eq!(std::mem::size_of::<ChunkUniform>(), 16);
        assert_eq!(std::mem::size_of::<CountUniform>(), 16);
        assert_eq!(std::mem::size_of::<BatchUniform>(), 16);
        assert_eq!(std::mem::size_of::<RowsUniform>(), 16);
        assert_eq!(std::mem::size_of::<GatherUniform>(), 16);
        assert_eq!(std::mem::size_of::<StepUniform>(), 56);
        assert_eq!(std::mem::size_of::<StateBlock>(), 16);
    }
}

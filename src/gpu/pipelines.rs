//! Compute pipelines and their bind group layouts, written out entry by entry next to the
//! WGSL bindings they mirror.

use super::context::GpuContext;
use super::shaders::{Reduction, Shape, WeightReads};
use crate::error::Result;

fn storage(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

fn uniform(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// A pipeline and the layout of its one bind group (cheap to clone: wgpu handles).
#[derive(Clone)]
pub struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

impl Kernel {
    fn build(
        ctx: &GpuContext,
        name: &str,
        source: &str,
        entries: &[wgpu::BindGroupLayoutEntry],
    ) -> Result<Kernel> {
        Self::build_entry(ctx, name, "main", source, entries)
    }

    /// [`Kernel::build`] for the entry point `entry` of `source`.
    fn build_entry(
        ctx: &GpuContext,
        name: &str,
        entry: &str,
        source: &str,
        entries: &[wgpu::BindGroupLayoutEntry],
    ) -> Result<Kernel> {
        // The generated source and the entry point name the kernel and the shape completely:
        // they are the key.
        let key = format!("{name}\n{entry}\n{source}");
        if let Some((pipeline, layout)) = ctx.cached_kernel(&key) {
            return Ok(Kernel { pipeline, layout });
        }
        let kernel = Self::compile(ctx, name, entry, source, entries)?;
        ctx.cache_kernel(key, (kernel.pipeline.clone(), kernel.layout.clone()));
        Ok(kernel)
    }

    fn compile(
        ctx: &GpuContext,
        name: &str,
        entry: &str,
        source: &str,
        entries: &[wgpu::BindGroupLayoutEntry],
    ) -> Result<Kernel> {
        ctx.checked(&format!("compiling the {name} kernel"), || {
            let device = &ctx.device;
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(name),
                entries,
            });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(name),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
            Kernel { pipeline, layout }
        })
    }

    /// A bind group of `buffers`, bound in order from binding 0.
    pub fn bind(&self, ctx: &GpuContext, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &self.layout,
            entries: &entries,
        })
    }
}

/// The fused forward/backward kernel (shaders/fused_step.wgsl), stepping `slots` runs from
/// each read of a point.
pub fn fused(
    ctx: &GpuContext,
    shape: &Shape,
    reduction: Reduction,
    reads: WeightReads,
    slots: usize,
) -> Result<Kernel> {
    Kernel::build(
        ctx,
        "fused_step",
        &shape.fused_source(reduction, reads, slots),
        &[
            storage(0, true),  // data: the chunk's columns
            storage(1, true),  // params: every run's
            storage(2, false), // partials: per run, one row per workgroup
            uniform(3),        // chunk: points, stride, partial_row
            storage(4, true),  // states: a stopped run is skipped
            storage(5, true),  // runs: the runs this step trains
        ],
    )
}

/// The reduce kernel (shaders/reduce.wgsl).
pub fn reduce(ctx: &GpuContext, shape: &Shape, reduction: Reduction) -> Result<Kernel> {
    Kernel::build(
        ctx,
        "reduce",
        &shape.reduce_source(reduction),
        &[
            storage(0, true),  // partials
            storage(1, false), // totals: per run, gradient of the SSE, then the SSE
            uniform(2),        // rows: how many partial rows
            storage(3, true),  // runs: the runs this step trains
        ],
    )
}

/// The update kernel (shaders/update.wgsl).
pub fn update(ctx: &GpuContext, shape: &Shape, reduction: Reduction) -> Result<Kernel> {
    Kernel::build(
        ctx,
        "update",
        &shape.update_source(reduction),
        &[
            storage(0, true),  // totals: per run
            storage(1, false), // params: per run
            storage(2, false), // previous: the weights before the last update, per run
            storage(3, false), // history: loss and gradient norm per update, per run
            storage(4, false), // states: updates made, stop reason, per run
            storage(5, true),  // steps: learning rate, loss scale, tolerance, limit, rule, per run
            storage(6, true),  // runs: the runs this step trains
            storage(7, false), // moments: momentum buffers or Adam's moments, per run
        ],
    )
}

/// The forward-only kernel (shaders/predict.wgsl).
pub fn predict(ctx: &GpuContext, shape: &Shape, reads: WeightReads) -> Result<Kernel> {
    Kernel::build(
        ctx,
        "predict",
        &shape.predict_source(reads),
        &[
            storage(0, true),  // data: the chunk's input columns
            storage(1, true),  // params
            storage(2, false), // out: one column per output
            uniform(3),        // chunk: points, stride
        ],
    )
}

/// The read-only yardstick kernel (shaders/read_once.wgsl).
pub fn read_once(ctx: &GpuContext, reduction: Reduction) -> Result<Kernel> {
    Kernel::build(
        ctx,
        "read_once",
        &Shape::read_once_source(reduction),
        &[
            storage(0, true),  // data: one chunk's columns
            storage(1, false), // partials: one per workgroup
            uniform(2),        // count: values, partial_row
        ],
    )
}

/// The mini-batch gather (shaders/gather.wgsl).
pub fn gather(ctx: &GpuContext) -> Result<Kernel> {
    Kernel::build(
        ctx,
        "gather",
        &Shape::gather_source(),
        &[
            storage(0, true),  // source: one chunk of the training data
            storage(1, true),  // order: the epoch's permutation
            storage(2, false), // batch: the batch's chunk
            uniform(3),        // gather: where the batch starts, its points, the source's
        ],
    )
}

/// The arithmetic yardstick (shaders/fma_peak.wgsl).
pub fn fma_peak(ctx: &GpuContext) -> Result<Kernel> {
    Kernel::build(
        ctx,
        "fma_peak",
        &Shape::fma_peak_source(),
        &[storage(0, false)], // values: the multiplier and addend, then one result per thread
    )
}

/// The loss landscape's kernel (shaders/landscape.wgsl).
pub fn landscape(
    ctx: &GpuContext,
    shape: &Shape,
    reduction: Reduction,
    reads: WeightReads,
) -> Result<Kernel> {
    Kernel::build(
        ctx,
        "landscape",
        &shape.landscape_source(reduction, reads),
        &[
            storage(0, true),  // data: one chunk's columns
            storage(1, true),  // sets: the batch's parameter vectors
            storage(2, false), // partials: one per workgroup
            uniform(3),        // chunk: points, stride
        ],
    )
}

/// One entry point of the layered kernels (shaders/layered.wgsl) with layer `layer`'s
/// constants, for batches of `batch` points. Every entry point shares one layout.
pub fn layered(
    ctx: &GpuContext,
    shape: &Shape,
    layer: usize,
    batch: u32,
    entry: &str,
    reduction: Reduction,
) -> Result<Kernel> {
    Kernel::build_entry(
        ctx,
        "layered",
        entry,
        &shape.layered_source(layer, batch, reduction),
        &[
            storage(0, true),  // data: the chunk's columns
            storage(1, true),  // params
            storage(2, false), // acts: every node's activation over the batch
            storage(3, false), // deltas: every node's error, then the squared errors
            storage(4, false), // totals: gradient of the SSE, then the SSE
            uniform(5),        // batch: start, count, stride
            storage(6, true),  // state: a stopped run skips the work
        ],
    )
}

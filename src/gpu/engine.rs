//! Gradient descent on the GPU: the buffers live on the device for the whole run, the weights
//! never leave it between steps, and many steps are recorded into one submission. Each step is
//! the fused pass (one dispatch per data chunk), the reduce pass and the update pass; the loss
//! of every step goes into a history buffer read back once per round of steps.
//!
//! One engine trains one run, or (with the per-point kernels) every run of a sweep at once:
//! every buffer but the data's holds one block per run, a step's passes take the runs still
//! going (the active list), and each run has its own rule, state and history.

use bytemuck::Zeroable;
use ndarray::{Array2, ArrayView2};

use super::batching::DeviceBatches;
use super::buffers::{self, StateBlock, StepUniform};
use super::chunks::{self, GpuOptions};
use super::context::GpuContext;
use super::layered::{self, LayeredPass};
use super::per_point::{PerPointPass, RunBuffers};
use super::pipelines::{self, Kernel};
use super::shaders::{Reduction, Shape, STEPS_PER_SUBMIT};
use crate::batches::BatchPlan;
use crate::data::{row_slices, Points};
use crate::descent::{Engine, EngineStop, Round, StepRecord, StepRule};
use crate::error::{Error, Result};
use crate::loss::Evaluation;
use crate::network::Network;
use crate::optimizer::{Optimizer, OptimizerState, Schedule};

/// How a step's gradient is computed: by one of two families of kernels.
enum GradientPass {
    PerPoint(PerPointPass),
    Layered(LayeredPass),
}

/// One run of a sweep kept on the device while others use the engine, with its weights as
/// last read back (what the run reports if the device is lost).
pub struct ParkedRun {
    /// The weights, the weights before the last update, and the update rule's moments (two
    /// per weight).
    buffers: [wgpu::Buffer; 3],
    updates: u32,
    last_params: Vec<f32>,
}

/// Gradient descent on a GPU device, for one run or many.
pub struct GpuEngine {
    ctx: GpuContext,
    template: Network,
    shape: Shape,
    runs: usize,
    points: usize,
    outputs: usize,
    gradient: GradientPass,
    reduction: Reduction,
    update: wgpu::ComputePipeline,
    update_group: wgpu::BindGroup,
    /// Every run's weights, one after another.
    params: wgpu::Buffer,
    /// The weights before the last update (restored when a loss diverges); bound in
    /// `update_group`.
    previous: wgpu::Buffer,
    totals: wgpu::Buffer,
    history: wgpu::Buffer,
    states: wgpu::Buffer,
    /// Every run's rule (`Step` in update.wgsl).
    steps: wgpu::Buffer,
    /// The runs a step trains: their count, then their indices.
    active: wgpu::Buffer,
    /// What the update rule carries between steps: every run's momentum buffer (or Adam's
    /// first moment), then every run's second moment.
    moments: wgpu::Buffer,
    /// Updates each run has made (Adam's bias correction and momentum's first step need it).
    updates: Vec<u32>,
    staging: wgpu::Buffer,
    /// The weights as last read back, kept for when the device is lost.
    last_params: Vec<f32>,
    /// With mini-batches (one run): each data chunk is a batch, gathered here every epoch.
    batches: Option<DeviceBatches>,
}

/// What a submission's steps read: all the data, or consecutive mini-batches.
#[derive(Clone, Copy)]
enum StepPoints {
    All,
    /// Batches from `first` on, each of `points` points.
    Batches {
        first: usize,
        points: usize,
    },
}

/// Per run, what one submission of steps left: the state and the history entries.
type Submitted = (Vec<StateBlock>, Vec<f32>);

impl GpuEngine {
    /// Uploads `data` and `net`'s weights to the device and builds the kernels for its shape.
    pub fn new(ctx: GpuContext, net: Network, data: &Points, options: GpuOptions) -> Result<Self> {
        Self::with_runs(ctx, std::slice::from_ref(&net), data, options)
    }

    /// Whether one engine trains several runs of `shape` together: with the per-point
    /// kernels (the layered ones train one run at a time).
    pub fn takes_runs(shape: &Shape, options: GpuOptions) -> bool {
        shape.check().is_ok() && !options.layered
    }

    /// Uploads `data` and every run's weights (`nets`, of one shape) to the device and builds
    /// the kernels for their shape: the engine steps them all in each pass over the data.
    pub fn with_runs(
        ctx: GpuContext,
        nets: &[Network],
        data: &Points,
        options: GpuOptions,
    ) -> Result<Self> {
        Self::build(ctx, nets, data, options, false)
    }

    /// An engine training `net` with one step per batch of `plan` (a full batch is plain
    /// descent): the data's chunks are the batches, gathered on the device every epoch. Its
    /// evaluations are over all the data.
    pub fn with_batches(
        ctx: GpuContext,
        net: Network,
        data: &Points,
        options: GpuOptions,
        plan: BatchPlan,
    ) -> Result<Self> {
        Self::with_runs_batched(ctx, std::slice::from_ref(&net), data, options, plan)
    }

    /// [`GpuEngine::with_batches`] for several runs: each step takes one batch of `plan`,
    /// the same for every run.
    pub fn with_runs_batched(
        ctx: GpuContext,
        nets: &[Network],
        data: &Points,
        options: GpuOptions,
        plan: BatchPlan,
    ) -> Result<Self> {
        plan.check_points(data.len())?;
        if plan.is_full() {
            return Self::with_runs(ctx, nets, data, options);
        }
        let batched = GpuOptions {
            max_chunk_points: Some(plan.size()),
            ..options
        };
        let mut engine = Self::build(ctx, nets, data, batched, true)?;
        let buffers = match &engine.gradient {
            GradientPass::PerPoint(pass) => pass.data_buffers(),
            GradientPass::Layered(pass) => pass.data_buffers(),
        };
        let batches = DeviceBatches::new(&engine.ctx, plan, data, &buffers, options)?;
        engine.batches = Some(batches);
        Ok(engine)
    }

    fn build(
        ctx: GpuContext,
        nets: &[Network],
        data: &Points,
        options: GpuOptions,
        batched: bool,
    ) -> Result<Self> {
        let Some(net) = nets.first() else {
            return Err(Error::InvalidArgument(
                "an engine needs at least one run".into(),
            ));
        };
        data.check_shape(net.inputs(), net.outputs(), "training data")?;
        let shape = Shape::of(net);
        let runs = nets.len();
        if let Some(other) = nets.iter().find(|n| Shape::of(n) != shape) {
            return Err(Error::InvalidArgument(format!(
                "the runs of one engine share a shape: {} and {}",
                net.describe(),
                other.describe()
            )));
        }
        if runs > 1 && !Self::takes_runs(&shape, options) {
            return Err(Error::Unsupported(format!(
                "the GPU trains the runs of {} one at a time",
                net.describe()
            )));
        }
        let reduction = options.reduction(&ctx);
        let update = pipelines::update(&ctx, &shape, reduction)?;
        let pp = shape.params + 1;
        let params32: Vec<f32> = nets
            .iter()
            .flat_map(|n| n.params().into_iter().map(|p| p as f32))
            .collect();
        let (params, previous, totals, states, active) =
            ctx.checked("allocating GPU buffers", || {
                use wgpu::BufferUsages as U;
                (
                    buffers::init(
                        &ctx,
                        "params",
                        bytemuck::cast_slice(&params32),
                        U::STORAGE | U::COPY_SRC | U::COPY_DST,
                    ),
                    buffers::init(
                        &ctx,
                        "previous",
                        bytemuck::cast_slice(&params32),
                        U::STORAGE | U::COPY_SRC | U::COPY_DST,
                    ),
                    buffers::empty(
                        &ctx,
                        "totals",
                        (runs * pp) as u64 * 4,
                        U::STORAGE | U::COPY_SRC,
                    ),
                    buffers::empty(
                        &ctx,
                        "states",
                        runs as u64 * 16,
                        U::STORAGE | U::COPY_SRC | U::COPY_DST,
                    ),
                    buffers::empty(
                        &ctx,
                        "active runs",
                        (runs as u64 + 1) * 4,
                        U::STORAGE | U::COPY_DST,
                    ),
                )
            })?;
        // The per-point kernel where it takes the shape (it is the fastest for narrow
        // networks), the layered kernels for every other shape.
        let gradient = if Self::takes_runs(&shape, options) {
            let buffers = RunBuffers {
                params: &params,
                totals: &totals,
                states: &states,
                active: &active,
            };
            GradientPass::PerPoint(PerPointPass::new(
                &ctx, &shape, data, options, runs, buffers, batched,
            )?)
        } else {
            GradientPass::Layered(LayeredPass::new(
                &ctx, &shape, data, options, &params, &totals, &states,
            )?)
        };
        let engine = ctx.checked("allocating GPU buffers", || {
            use wgpu::BufferUsages as U;
            let history = buffers::empty(
                &ctx,
                "history",
                (runs * STEPS_PER_SUBMIT) as u64 * 8,
                U::STORAGE | U::COPY_SRC,
            );
            let step_bytes = std::mem::size_of::<StepUniform>() as u64;
            let steps = buffers::empty(
                &ctx,
                "steps",
                runs as u64 * step_bytes,
                U::STORAGE | U::COPY_DST,
            );
            // Every run's first moments, then every run's second moments.
            let moment_bytes = (2 * runs * shape.params) as u64 * 4;
            let moments = buffers::empty(
                &ctx,
                "moments",
                moment_bytes,
                U::STORAGE | U::COPY_SRC | U::COPY_DST,
            );
            let update_group = update.bind(
                &ctx,
                &[
                    &totals, &params, &previous, &history, &states, &steps, &active, &moments,
                ],
            );
            // A round's read-back (states, history, weights) or an evaluation's totals.
            let round_bytes = runs * (16 + STEPS_PER_SUBMIT * 8 + shape.params * 4);
            let staging_bytes = round_bytes.max(runs * pp * 4) as u64;
            let staging = buffers::empty(&ctx, "staging", staging_bytes, U::MAP_READ | U::COPY_DST);
            GpuEngine {
                points: data.len(),
                outputs: data.outputs(),
                template: net.clone(),
                shape,
                runs,
                gradient,
                reduction,
                update: update.pipeline,
                update_group,
                params,
                previous,
                totals,
                history,
                states,
                steps,
                active,
                moments,
                updates: vec![0; runs],
                staging,
                last_params: params32,
                batches: None,
                ctx: ctx.clone(),
            }
        })?;
        Ok(engine)
    }

    /// The runs this engine trains.
    pub fn runs(&self) -> usize {
        self.runs
    }

    /// How many passes over the data a step of every run takes: the runs in slots of the
    /// widest fused kernel (the layered kernels take one run).
    pub fn passes_per_step(&self) -> usize {
        match &self.gradient {
            GradientPass::PerPoint(pass) => self.runs.div_ceil(pass.widest_slots()),
            GradientPass::Layered(_) => self.runs,
        }
    }

    /// Makes `runs` the runs the next passes train.
    fn set_active(&self, runs: &[usize]) {
        let list: Vec<u32> = std::iter::once(runs.len() as u32)
            .chain(runs.iter().map(|&r| r as u32))
            .collect();
        self.ctx
            .queue
            .write_buffer(&self.active, 0, bytemuck::cast_slice(&list));
    }

    /// Clears every run's state: the passes skip the runs that have stopped.
    fn reset_states(&self) {
        let states = vec![StateBlock::default(); self.runs];
        self.ctx
            .queue
            .write_buffer(&self.states, 0, bytemuck::cast_slice(&states));
    }

    /// Number of data chunks (one storage binding each).
    pub fn chunk_count(&self) -> usize {
        match &self.gradient {
            GradientPass::PerPoint(pass) => pass.chunk_count(),
            GradientPass::Layered(pass) => pass.chunk_count(),
        }
    }

    /// The SSE alone at the weights on the device (the first run's): with the layered
    /// kernels, a forward pass without the gradient's (the landscape of a wide network needs
    /// only the losses).
    pub fn sse(&mut self) -> Result<f64> {
        let totals = self.pass_totals(true)?;
        Ok(f64::from(totals[0]))
    }

    /// One pass over the data at every run's weights on the device and what it leaves in the
    /// totals: per run, the gradient of the SSE, then the SSE; with `loss_only`, the first
    /// run's SSE alone (computed by a forward pass where the layered kernels run). The states
    /// are cleared first: the passes skip a run once it has stopped.
    fn pass_totals(&self, loss_only: bool) -> Result<Vec<f32>> {
        self.reset_states();
        self.set_active(&(0..self.runs).collect::<Vec<_>>());
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            match &self.gradient {
                GradientPass::Layered(layered) if loss_only => layered.record_loss(&mut pass),
                _ => self.record_gradient(&mut pass, self.runs),
            }
        }
        let gradient_bytes = self.shape.params as u64 * 4;
        let (from, bytes) = if loss_only {
            (gradient_bytes, 4)
        } else {
            (0, self.runs as u64 * (gradient_bytes + 4))
        };
        encoder.copy_buffer_to_buffer(&self.totals, from, &self.staging, 0, bytes);
        self.ctx.queue.submit([encoder.finish()]);
        Ok(bytemuck::pod_collect_to_vec(&buffers::read_staging(
            &self.ctx,
            &self.staging,
            bytes,
        )?))
    }

    /// How its kernels sum within a workgroup (with subgroup operations where the device has
    /// them, unless the options said otherwise).
    pub fn reduction(&self) -> Reduction {
        self.reduction
    }

    /// A new parked copy of the run on the device now (its weights, the weights before its
    /// last update and its update rule's state), for a sweep that trains other runs with this
    /// engine in between.
    pub fn park(&self) -> Result<ParkedRun> {
        let bytes = self.shape.params as u64 * 4;
        let mut parked = self.ctx.checked("allocating a sweep run's buffers", || {
            let buffer = |bytes| {
                use wgpu::BufferUsages as U;
                buffers::empty(&self.ctx, "parked run", bytes, U::COPY_SRC | U::COPY_DST)
            };
            ParkedRun {
                buffers: [buffer(bytes), buffer(bytes), buffer(2 * bytes)],
                updates: 0,
                last_params: self.last_params.clone(),
            }
        })?;
        self.park_into(&mut parked);
        Ok(parked)
    }

    /// The buffers that hold the run on the device now, in the order of a parked run's.
    fn run_buffers(&self) -> [&wgpu::Buffer; 3] {
        [&self.params, &self.previous, &self.moments]
    }

    /// Copies the run on the device now into `parked`.
    pub fn park_into(&self, parked: &mut ParkedRun) {
        self.copy_weights(self.run_buffers(), parked.buffers.each_ref());
        parked.updates = self.updates[0];
        parked.last_params.clone_from(&self.last_params);
    }

    /// Makes `parked` the run on the device: its next steps continue that run exactly, its
    /// divergence check and its update rule's state included.
    pub fn unpark(&mut self, parked: &ParkedRun) {
        self.copy_weights(parked.buffers.each_ref(), self.run_buffers());
        self.updates[0] = parked.updates;
        self.last_params.clone_from(&parked.last_params);
    }

    /// Copies each of `from` into the buffer of the same size in `to` (an engine that parks
    /// runs holds one run).
    fn copy_weights(&self, from: [&wgpu::Buffer; 3], to: [&wgpu::Buffer; 3]) {
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        for (f, t) in from.into_iter().zip(to) {
            encoder.copy_buffer_to_buffer(f, 0, t, 0, f.size().min(t.size()));
        }
        self.ctx.queue.submit([encoder.finish()]);
    }

    /// Whether the engine runs the layered kernels (a network too wide for the per-point one).
    pub fn is_layered(&self) -> bool {
        matches!(self.gradient, GradientPass::Layered(_))
    }

    /// Puts `net`'s weights (of the engine's shape) on the device as the first run's, for the
    /// next steps or evaluation: one engine evaluates any number of weight sets over data
    /// uploaded once. The update rule's state stays (a checking engine follows the run it
    /// checks): a new run with momentum or Adam takes a new engine.
    pub fn load_network(&mut self, net: &Network) -> Result<()> {
        self.load_run(0, net)?;
        self.template = net.clone();
        Ok(())
    }

    /// Puts `net`'s weights on the device as run `run`'s (and as its weights before the last
    /// update); its update rule's state stays.
    pub fn load_run(&mut self, run: usize, net: &Network) -> Result<()> {
        if run >= self.runs {
            return Err(Error::InvalidArgument(format!(
                "run {run} of an engine of {} runs",
                self.runs
            )));
        }
        if Shape::of(net) != self.shape {
            return Err(Error::InvalidArgument(format!(
                "the engine was built for {}, not {}",
                self.template.describe(),
                net.describe()
            )));
        }
        let params32: Vec<f32> = net.params().iter().map(|&p| p as f32).collect();
        let at = run * self.shape.params;
        // The weights "before the last update" too: a divergence on the first step from here
        // comes back to `net`, as on the CPU.
        for buffer in [&self.params, &self.previous] {
            self.ctx
                .queue
                .write_buffer(buffer, at as u64 * 4, bytemuck::cast_slice(&params32));
        }
        self.last_params[at..at + params32.len()].copy_from_slice(&params32);
        Ok(())
    }

    /// Workgroups of the per-point pass over all chunks (one row of partial sums each); 0
    /// with the layered kernels.
    pub fn workgroups(&self) -> u32 {
        match &self.gradient {
            GradientPass::PerPoint(pass) => pass.workgroups(),
            GradientPass::Layered(_) => 0,
        }
    }

    /// The name of the adapter.
    pub fn adapter_name(&self) -> &str {
        &self.ctx.adapter.name
    }

    /// Records one step's gradient pass for the first `active` runs of the active list: the
    /// gradient of the SSE and the SSE in `totals`.
    fn record_gradient(&self, pass: &mut wgpu::ComputePass<'_>, active: usize) {
        match &self.gradient {
            GradientPass::PerPoint(gradient) => gradient.record(pass, active),
            GradientPass::Layered(gradient) => gradient.record(pass),
        }
    }

    /// Runs `count` steps of the runs `active` (by `rules`, one per run) over `points` in one
    /// submission; returns every run's state and history entries (`STEPS_PER_SUBMIT` pairs
    /// per run), and keeps the weights read back with them.
    fn submit_steps(
        &mut self,
        count: usize,
        rules: &[Option<StepRule>],
        active: &[usize],
        points: StepPoints,
    ) -> Result<Submitted> {
        let scaled_over = match points {
            StepPoints::All => self.points,
            StepPoints::Batches { points, .. } => points,
        };
        let uniforms: Vec<StepUniform> = rules
            .iter()
            .zip(&self.updates)
            .map(|(rule, &updates)| match rule {
                Some(rule) => step_uniform(rule, updates, scaled_over, self.outputs),
                None => StepUniform::zeroed(),
            })
            .collect();
        self.ctx
            .queue
            .write_buffer(&self.steps, 0, bytemuck::cast_slice(&uniforms));
        self.reset_states();
        self.set_active(active);
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for i in 0..count {
                match (points, &self.gradient) {
                    (StepPoints::All, _) => self.record_gradient(&mut pass, active.len()),
                    (StepPoints::Batches { first, .. }, GradientPass::PerPoint(gradient)) => {
                        gradient.record_chunk(&mut pass, active.len(), first + i)
                    }
                    (StepPoints::Batches { first, .. }, GradientPass::Layered(gradient)) => {
                        gradient.record_chunk(&mut pass, first + i)
                    }
                }
                pass.set_pipeline(&self.update);
                pass.set_bind_group(0, &self.update_group, &[]);
                pass.dispatch_workgroups(active.len() as u32, 1, 1);
            }
        }
        let runs = self.runs as u64;
        let state_bytes = runs * 16;
        let history_bytes = runs * STEPS_PER_SUBMIT as u64 * 8;
        let weight_bytes = runs * self.shape.params as u64 * 4;
        let history_end = state_bytes + history_bytes;
        encoder.copy_buffer_to_buffer(&self.states, 0, &self.staging, 0, state_bytes);
        encoder.copy_buffer_to_buffer(&self.history, 0, &self.staging, state_bytes, history_bytes);
        encoder.copy_buffer_to_buffer(&self.params, 0, &self.staging, history_end, weight_bytes);
        self.ctx.queue.submit([encoder.finish()]);
        let bytes = buffers::read_staging(&self.ctx, &self.staging, history_end + weight_bytes)?;
        let (state_end, end) = (state_bytes as usize, history_end as usize);
        let states: Vec<StateBlock> = bytemuck::pod_collect_to_vec(&bytes[..state_end]);
        let history: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes[state_end..end]);
        self.last_params = bytemuck::pod_collect_to_vec(&bytes[end..]);
        Ok((states, history))
    }

    /// Up to `count` steps of every run with a rule (`rules`, one per run), numbered from
    /// `first_step`: each run stops on its own (flat, diverged) while the others go on.
    pub fn run_rounds(
        &mut self,
        first_step: usize,
        count: usize,
        rules: &[Option<StepRule>],
    ) -> Result<Vec<Round>> {
        if rules.len() != self.runs {
            return Err(Error::InvalidArgument(format!(
                "{} rules for {} runs",
                rules.len(),
                self.runs
            )));
        }
        let mut rounds = vec![Round::default(); self.runs];
        let mut active: Vec<usize> = (0..self.runs).filter(|&r| rules[r].is_some()).collect();
        let mut done = 0;
        while done < count && !active.is_empty() {
            let (batch, points) = self.next_submission(first_step + done, count - done);
            let (states, history) = self.submit_steps(batch, rules, &active, points)?;
            for &r in &active {
                self.updates[r] += states[r].applied;
            }
            active.retain(|&r| {
                let state = states[r];
                let entries = &history[2 * r * STEPS_PER_SUBMIT..];
                let applied = state.applied as usize;
                let round = &mut rounds[r];
                round.records.extend((0..applied).map(|i| StepRecord {
                    step: first_step + done + i,
                    loss: f64::from(entries[2 * i]),
                    gradient_norm: f64::from(entries[2 * i + 1]),
                }));
                let step = first_step + done + applied;
                round.stop = match state.stop {
                    0 => None,
                    1 => Some(EngineStop::Flat {
                        step,
                        gradient_norm: f64::from(state.stop_norm),
                    }),
                    _ => Some(EngineStop::Diverged {
                        step,
                        loss: f64::from(state.stop_loss),
                    }),
                };
                round.stop.is_none()
            });
            done += batch;
        }
        Ok(rounds)
    }

    /// How many of the next `left` steps (from step `step`) one submission takes, and over
    /// which points: at full batch up to `STEPS_PER_SUBMIT`; with mini-batches, no further
    /// than the end of the epoch (whose batches are gathered first), and the last batch
    /// alone when it is smaller (its loss is scaled by its own points).
    fn next_submission(&mut self, step: usize, left: usize) -> (usize, StepPoints) {
        let most = STEPS_PER_SUBMIT.min(left);
        let Some(batches) = &mut self.batches else {
            return (most, StepPoints::All);
        };
        batches.load_epoch_of(&self.ctx, step);
        let plan = *batches.plan();
        let (batch, last) = (plan.batch_of(step), plan.per_epoch() - 1);
        let points = plan.range(batch).len();
        let same_size = if points == plan.range(last).len() {
            last + 1 - batch
        } else {
            last - batch
        };
        let count = most.min(same_size.max(1));
        (
            count,
            StepPoints::Batches {
                first: batch,
                points,
            },
        )
    }

    /// The SSE and its gradient of every run at its weights now.
    pub fn evaluate_runs(&mut self) -> Result<Vec<Evaluation>> {
        let totals = self.pass_totals(false)?;
        let pp = self.shape.params + 1;
        Ok(totals
            .chunks(pp)
            .map(|run| Evaluation {
                points: self.points,
                outputs: self.outputs,
                sse: f64::from(run[self.shape.params]),
                sse_gradient: run[..self.shape.params]
                    .iter()
                    .map(|&g| f64::from(g))
                    .collect(),
            })
            .collect())
    }

    /// Every run's weights now (as last read back, if the device cannot be read).
    pub fn networks(&mut self) -> Result<Vec<Network>> {
        let bytes = self.runs as u64 * self.shape.params as u64 * 4;
        let values: Vec<f32> = match buffers::read(&self.ctx, &self.params, 0, bytes) {
            Ok(bytes) => bytemuck::pod_collect_to_vec(&bytes),
            Err(e) => {
                log::warn!("{e}; keeping the weights last read back from the GPU");
                self.last_params.clone()
            }
        };
        self.networks_of(&values)
    }

    /// Every run's weights before its last update.
    pub fn previous_networks(&mut self) -> Result<Vec<Network>> {
        let bytes = self.runs as u64 * self.shape.params as u64 * 4;
        let values: Vec<f32> =
            bytemuck::pod_collect_to_vec(&buffers::read(&self.ctx, &self.previous, 0, bytes)?);
        self.networks_of(&values)
    }

    /// The networks of the runs' weights `values`, one run after another.
    fn networks_of(&self, values: &[f32]) -> Result<Vec<Network>> {
        values
            .chunks(self.shape.params)
            .map(|run| {
                let mut net = self.template.clone();
                net.set_params(&run.iter().map(|&v| f64::from(v)).collect::<Vec<_>>())?;
                Ok(net)
            })
            .collect()
    }
}

/// A run's rule as update.wgsl reads it, `updates` updates into the run.
fn step_uniform(rule: &StepRule, updates: u32, points: usize, outputs: usize) -> StepUniform {
    let (code, beta1, beta2, eps) = match rule.update.optimizer {
        Optimizer::Gd => (0, 0.0, 0.0, 0.0),
        Optimizer::Momentum { momentum, nesterov } => {
            (if nesterov { 2 } else { 1 }, momentum, 0.0, 0.0)
        }
        Optimizer::Adam { beta1, beta2, eps } => (3, beta1, beta2, eps),
    };
    // Counts past u32 cannot happen within a run the engine takes (its steps are u32 too).
    let count = |n: u64| n.min(u64::from(u32::MAX)) as u32;
    let (schedule, every, factor, total) = match rule.update.schedule {
        Schedule::Constant => (0, 0, 0.0, 0),
        Schedule::Step { every, factor } => (1, count(every), factor, 0),
        Schedule::Exp { factor } => (2, 0, factor, 0),
        Schedule::Cosine { total } => (3, 0, 0.0, count(total)),
    };
    StepUniform {
        learning_rate: rule.learning_rate as f32,
        scale: rule.loss.scale(points, outputs) as f32,
        tolerance: rule.tolerance as f32,
        limit: rule.divergence_limit as f32,
        rule: code,
        updates,
        beta1: beta1 as f32,
        beta2: beta2 as f32,
        eps: eps as f32,
        weight_decay: rule.update.weight_decay as f32,
        schedule,
        every,
        factor: factor as f32,
        total,
    }
}

/// The engine as one run's: its first run (the only one outside sweeps).
impl Engine for GpuEngine {
    fn device(&self) -> String {
        format!(
            "gpu ({}, {})",
            self.ctx.adapter.name, self.ctx.adapter.backend
        )
    }

    fn run_steps(&mut self, first_step: usize, count: usize, rule: &StepRule) -> Result<Round> {
        let mut rules = vec![None; self.runs];
        rules[0] = Some(*rule);
        let mut rounds = self.run_rounds(first_step, count, &rules)?;
        Ok(rounds.swap_remove(0))
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        let mut runs = self.evaluate_runs()?;
        Ok(runs.swap_remove(0))
    }

    fn network(&mut self) -> Result<Network> {
        let mut nets = self.networks()?;
        Ok(nets.swap_remove(0))
    }

    fn preferred_round(&self) -> usize {
        STEPS_PER_SUBMIT
    }

    fn set_network(&mut self, net: &Network) -> Result<()> {
        self.load_network(net)
    }

    fn previous_network(&mut self) -> Result<Option<Network>> {
        let mut nets = self.previous_networks()?;
        Ok(Some(nets.swap_remove(0)))
    }

    fn optimizer_state(&mut self) -> Result<OptimizerState> {
        // The first run's: its first moments at the start, its second ones past every run's
        // first.
        let p = self.shape.params;
        let bytes = buffers::read(&self.ctx, &self.moments, 0, (2 * self.runs * p) as u64 * 4)?;
        let values: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
        let widen =
            |range: std::ops::Range<usize>| values[range].iter().map(|&v| f64::from(v)).collect();
        Ok(OptimizerState {
            updates: u64::from(self.updates[0]),
            first: widen(0..p),
            second: widen(self.runs * p..self.runs * p + p),
        })
    }

    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        let p = self.shape.params;
        let narrow = |values: &[f64]| -> Vec<f32> {
            let mut out: Vec<f32> = values.iter().map(|&v| v as f32).collect();
            out.resize(p, 0.0);
            out
        };
        let (first, second) = (narrow(&state.first), narrow(&state.second));
        let queue = &self.ctx.queue;
        queue.write_buffer(&self.moments, 0, bytemuck::cast_slice(&first));
        queue.write_buffer(
            &self.moments,
            (self.runs * p) as u64 * 4,
            bytemuck::cast_slice(&second),
        );
        self.updates[0] = u32::try_from(state.updates).map_err(|_| {
            Error::InvalidArgument(format!(
                "{} updates are more than the GPU counts",
                state.updates
            ))
        })?;
        Ok(())
    }

    fn set_network_after(&mut self, net: &Network, previous: &Network) -> Result<()> {
        self.load_network(net)?;
        let values: Vec<f32> = previous.params().iter().map(|&p| p as f32).collect();
        self.ctx
            .queue
            .write_buffer(&self.previous, 0, bytemuck::cast_slice(&values));
        Ok(())
    }
}

/// Predictions on the GPU for inputs given column by column: `(inputs, points)` in,
/// `(outputs, points)` out.
pub fn predict(
    ctx: &GpuContext,
    net: &Network,
    inputs: ArrayView2<f32>,
    options: GpuOptions,
) -> Result<Array2<f32>> {
    let shape = Shape::of(net);
    if inputs.nrows() != shape.inputs {
        return Err(Error::ShapeMismatch {
            context: "prediction inputs".into(),
            expected: format!("{} input columns", shape.inputs),
            got: format!("{} columns", inputs.nrows()),
        });
    }
    let standard = inputs.as_standard_layout();
    let columns = row_slices(standard.view());
    let params32: Vec<f32> = net.params().iter().map(|&p| p as f32).collect();
    if shape.check().is_err() || options.layered {
        return layered::predict(ctx, &shape, &params32, &columns, options);
    }
    let kernel: Kernel = pipelines::predict(ctx, &shape, options.weight_reads(ctx, &shape))?;
    let points = inputs.ncols();
    // The outputs of a chunk go into a buffer of the same binding limit as its inputs.
    let cut = chunks::cut(
        ctx,
        points,
        shape.inputs.max(shape.outputs),
        chunks::points_per_group(ctx),
        0,
        options,
    )?;
    let mut out = Array2::<f32>::zeros((shape.outputs, points));
    // Chunk by chunk, uploaded and read back in turn: only one chunk is on the device at once.
    for chunk in &cut.chunks {
        let (start, end, n) = (chunk.start, chunk.end, chunk.points());
        let bytes = (shape.outputs * n * 4) as u64;
        let result = ctx.checked("running the predict kernel", || {
            use wgpu::BufferUsages as U;
            let data = buffers::upload_columns(ctx, columns.as_slice(), start, end);
            let params = buffers::init(ctx, "params", bytemuck::cast_slice(&params32), U::STORAGE);
            let output = buffers::empty(ctx, "predictions", bytes, U::STORAGE | U::COPY_SRC);
            let uniform = buffers::init(
                ctx,
                "chunk",
                bytemuck::bytes_of(&chunk.uniform(cut.rows)),
                U::UNIFORM,
            );
            let group = kernel.bind(ctx, &[&data, &params, &output, &uniform]);
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(&kernel.pipeline);
                pass.set_bind_group(0, &group, &[]);
                pass.dispatch_workgroups(chunk.groups, 1, 1);
            }
            ctx.queue.submit([encoder.finish()]);
            output
        })?;
        let values: Vec<f32> =
            bytemuck::pod_collect_to_vec(&buffers::read(ctx, &result, 0, bytes)?);
        for k in 0..shape.outputs {
            out.row_mut(k).as_slice_mut().expect("standard layout")[start..end]
                .copy_from_slice(&values[k * n..(k + 1) * n]);
        }
    }
    Ok(out)
}

//! `downhill bench`: the same training steps on every path (CPU fused, CPU reference, GPU),
//! timed side by side on the same data, and set against what this machine can do at best.
//!
//! Two yardsticks are measured by the command itself rather than quoted: the memory bandwidth
//! (a read-only pass over a large buffer, [`Target::read_once_seconds`]) and the single-precision
//! arithmetic peak ([`probe::fma_peak`]). A step must read every point once and do
//! [`Network::step_flops_per_point`] operations per point, so its floor is the larger of the
//! two times; which one is larger says what bounds the workload. The GPU path is measured
//! against the same adapter reading the same data once (a read-only kernel).

use std::time::Instant;

use serde::Serialize;

use crate::cpu::{probe, CpuVariant};
use crate::data::{self, Dataset, Points};
use crate::descent::{Engine, StepRule};
use crate::device::{DeviceChoice, Target};
use crate::error::{Error, Result};
use crate::loss::LossKind;
use crate::network::{Activation, Network};
use crate::sweep::SweepEngine;

/// Values in the buffer the bandwidth probe reads: 256 MiB, far beyond any cache.
const BANDWIDTH_PROBE_VALUES: usize = 64 << 20;
/// Read-only passes per bandwidth measurement.
const PROBE_REPEATS: usize = 5;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchSettings {
    /// Layer widths of each workload, inputs first.
    pub workloads: Vec<Vec<usize>>,
    /// Dataset sizes.
    pub points: Vec<usize>,
    /// Steps per timed repetition (and in the warm-up).
    pub steps: usize,
    /// Timed repetitions per path and size.
    pub repeats: usize,
    pub learning_rate: f64,
    /// `auto`: every path this machine has; `cpu`: the two CPU paths; `gpu`: the GPU path next
    /// to the fused CPU path (the baseline of every speedup).
    pub device: DeviceChoice,
    /// The reference path is skipped above this many points (it is ~100x slower).
    pub reference_max_points: usize,
    pub seed: u64,
    /// Runs of the sweep rows (several runs stepped together, each device's sweep engine);
    /// 0 or 1: no sweep rows.
    pub sweep_runs: usize,
}

impl Default for BenchSettings {
    fn default() -> Self {
        BenchSettings {
            workloads: vec![vec![2, 2, 1], vec![8, 64, 64, 1]],
            points: vec![100_000, 1_000_000],
            steps: 5,
            repeats: 5,
            learning_rate: 0.01,
            device: DeviceChoice::Auto,
            reference_max_points: 10_000_000,
            seed: 6,
            sweep_runs: 8,
        }
    }
}

/// The machine's yardsticks, measured by the run.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpu_threads: usize,
    /// Read bandwidth of a 256 MiB read-only pass, all threads.
    pub cpu_read_gb_per_s: f64,
    /// Peak single-precision rate (independent multiply-add chains on every thread).
    pub cpu_peak_gflop_per_s: f64,
    /// The GPU adapter measured, if any.
    pub gpu_adapter: Option<String>,
    /// Its peak single-precision rate (independent multiply-add chains on many threads).
    pub gpu_peak_gflop_per_s: Option<f64>,
}

/// One path at one size.
#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    /// Layer widths as `2-2-1`.
    pub workload: String,
    /// `cpu fused`, `cpu reference` or `gpu (adapter)`; a sweep row adds `, sweep of R`.
    pub path: String,
    /// Runs stepped together (1 but for the sweep rows): the row's points per second count
    /// every run's points, and its speedup is over R steps of the fused path one run at a time.
    pub runs: usize,
    pub points: usize,
    pub ms_per_step_median: f64,
    pub ms_per_step_min: f64,
    pub ms_per_step_max: f64,
    pub points_per_s: f64,
    /// Bytes the step must read (every point once) divided by the median time.
    pub gb_per_s: f64,
    /// Operations of the step divided by the median time.
    pub gflop_per_s: f64,
    /// `memory` or `arithmetic`: which floor is the larger for this path.
    pub bound: &'static str,
    /// The least time a step can take here: the data read once on this device, or the
    /// operations at the CPU's peak rate, whichever is longer.
    pub floor_ms: f64,
    /// `floor_ms / ms_per_step_median`: 1.0 would be at the floor.
    pub share_of_floor: f64,
    /// Median time of the fused CPU path over this path's.
    pub speedup_vs_cpu_fused: f64,
    /// The MSE after all the timed steps.
    pub final_loss: f64,
    /// `|loss - fused loss| / fused loss`: all paths take the same steps from the same weights,
    /// so this is their disagreement.
    pub loss_rel_diff_vs_cpu_fused: f64,
}

/// Everything one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub machine: Machine,
    pub steps: usize,
    pub repeats: usize,
    pub rows: Vec<BenchRow>,
    /// What was left out, and why.
    pub notes: Vec<String>,
}

/// Runs the benchmark. `progress` is told what is being measured as it starts.
pub fn run(settings: &BenchSettings, progress: &mut dyn FnMut(&str)) -> Result<BenchReport> {
    if settings.steps == 0 || settings.repeats == 0 {
        return Err(Error::InvalidArgument(
            "--steps and --repeats must be at least 1".into(),
        ));
    }
    // The same checks as `train` makes of its settings.
    crate::descent::Descent {
        learning_rate: settings.learning_rate,
        ..crate::descent::Descent::default()
    }
    .validate()?;
    for widths in &settings.workloads {
        for &points in &settings.points {
            data::check_size(points, widths[0], widths[widths.len() - 1])?;
        }
    }
    // Any adapter, a software one too: its row says what it is. No fallback to the CPU.
    let gpu = match settings.device {
        DeviceChoice::Cpu => None,
        DeviceChoice::Auto => Target::any_gpu(false)?,
        DeviceChoice::Gpu => Target::any_gpu(true)?,
    };
    progress("measuring this machine's memory bandwidth and arithmetic peak");
    let machine = Machine {
        cpu_threads: rayon::current_num_threads(),
        cpu_read_gb_per_s: cpu_bandwidth(),
        cpu_peak_gflop_per_s: probe::fma_peak() / 1e9,
        gpu_adapter: gpu.as_ref().and_then(Target::adapter),
        gpu_peak_gflop_per_s: None,
    };
    let mut report = BenchReport {
        machine,
        steps: settings.steps,
        repeats: settings.repeats,
        rows: Vec::new(),
        notes: Vec::new(),
    };
    // A GPU whose arithmetic cannot be measured is still timed, against its bandwidth alone.
    if let Some(gpu) = &gpu {
        match gpu.fma_peak() {
            Ok(peak) => report.machine.gpu_peak_gflop_per_s = Some(peak / 1e9),
            Err(e) => report
                .notes
                .push(format!("the GPU's f32 peak was not measured: {e}")),
        }
    }
    if settings.device == DeviceChoice::Auto && gpu.is_none() {
        report
            .notes
            .push("no GPU adapter: the GPU path was not measured".into());
    }
    for widths in &settings.workloads {
        for &points in &settings.points {
            measure_size(
                settings,
                widths,
                points,
                gpu.as_ref(),
                &mut report,
                progress,
            )?;
        }
    }
    Ok(report)
}

/// Read bandwidth in GB/s: the best of a few read-only passes over 256 MiB.
fn cpu_bandwidth() -> f64 {
    // Filled with ones, not zeros: untouched zeroed pages would all map to one shared page.
    let columns = ndarray::Array2::<f32>::ones((2, BANDWIDTH_PROBE_VALUES / 2));
    let set = Dataset::from_columns(columns, 1).expect("two columns make a dataset");
    let best = Target::cpu(CpuVariant::Fused)
        .read_once_seconds(&set, PROBE_REPEATS)
        .expect("the CPU's read-only pass cannot fail");
    set.bytes() as f64 / best / 1e9
}

fn measure_size(
    settings: &BenchSettings,
    widths: &[usize],
    points: usize,
    gpu: Option<&Target>,
    report: &mut BenchReport,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let workload = widths
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("-");
    let teacher = if widths == [2, 2, 1] {
        Network::lesson_baseline(Activation::Relu)
    } else {
        Network::random(widths, Activation::Relu, true, settings.seed)?
    };
    let student = Network::random(widths, Activation::Relu, true, settings.seed + 1)?;
    progress(&format!(
        "{workload} at {points} points: generating the data"
    ));
    let set = data::generate(&teacher, points, 0.05, settings.seed)?;
    let rule = StepRule {
        learning_rate: settings.learning_rate,
        loss: LossKind::Mse,
        tolerance: 0.0,
        divergence_limit: f64::INFINITY,
        update: Default::default(),
    };
    let bytes = set.bytes() as f64;
    let flops = (student.step_flops_per_point() * points) as f64;
    let machine = &report.machine;
    let read_s = bytes / (machine.cpu_read_gb_per_s * 1e9);
    let compute_s = flops / (machine.cpu_peak_gflop_per_s * 1e9);
    let (cpu_floor, cpu_bound) = floor(read_s, compute_s);

    let mut timings: Vec<(String, Timing, f64, &'static str, usize)> = Vec::new();
    let mut paths = vec![CpuVariant::Fused];
    if settings.device != DeviceChoice::Gpu {
        if points <= settings.reference_max_points {
            paths.push(CpuVariant::Reference);
        } else {
            report.notes.push(format!(
                "{workload} at {points} points: cpu reference skipped (above \
                 --reference-max-points {})",
                settings.reference_max_points
            ));
        }
    }
    for variant in paths {
        let mut engine = Target::cpu(variant).engine(student.clone(), &set)?.boxed();
        let name = format!("cpu {}", variant.kernel().name());
        progress(&format!("{workload} at {points} points: {name}"));
        let timing = time_engine(engine.as_mut(), settings, &rule)?;
        timings.push((name, timing, cpu_floor, cpu_bound, 1));
    }
    let runs = settings.sweep_runs;
    if runs > 1 && settings.device != DeviceChoice::Gpu {
        let name = format!("cpu fused, sweep of {runs}");
        progress(&format!("{workload} at {points} points: {name}"));
        let target = Target::cpu(CpuVariant::Fused);
        let mut sweep = target
            .sweep_engine(vec![student.clone(); runs], &set)?
            .boxed();
        let timing = time_sweep(sweep.as_mut(), settings, &rule)?;
        // One read of the data, the arithmetic of every run.
        let (floor_s, bound) = floor(read_s, compute_s * runs as f64);
        timings.push((name, timing, floor_s, bound, runs));
    }
    if let Some(gpu) = gpu {
        let name = gpu.name();
        match time_gpu(gpu, &student, &set, settings, &rule, &mut || {
            progress(&format!("{workload} at {points} points: {name}"))
        }) {
            Ok((timing, read_s)) => {
                // The GPU's floor as the CPU's: the read, or the arithmetic at its own peak.
                let peak = report.machine.gpu_peak_gflop_per_s.unwrap_or(f64::INFINITY);
                let compute_s = flops / (peak * 1e9);
                let (floor_s, bound) = floor(read_s, compute_s);
                timings.push((name.clone(), timing, floor_s, bound, 1));
                if runs > 1 {
                    let name = format!("{name}, sweep of {runs}");
                    progress(&format!("{workload} at {points} points: {name}"));
                    let mut sweep = gpu.sweep_engine(vec![student.clone(); runs], &set)?.boxed();
                    let timing = time_sweep(sweep.as_mut(), settings, &rule)?;
                    // Each pass over the data serves as many runs as the kernel has slots.
                    let passes = sweep.passes_per_step() as f64;
                    let (floor_s, bound) = floor(read_s * passes, compute_s * runs as f64);
                    timings.push((name, timing, floor_s, bound, runs));
                }
            }
            Err(Error::Unsupported(why)) => {
                let note = format!("{workload}: GPU path not measured: {why}");
                if !report.notes.contains(&note) {
                    report.notes.push(note);
                }
            }
            Err(e) => return Err(e),
        }
    }

    let (fused_ms, fused_loss) = (timings[0].1.median_ms(), timings[0].1.final_loss);
    for (path, timing, floor_s, bound, runs) in timings {
        let ms = timing.median_ms();
        let every_run = runs as f64;
        report.rows.push(BenchRow {
            workload: workload.clone(),
            path,
            runs,
            points,
            ms_per_step_median: ms,
            ms_per_step_min: timing.min_ms(),
            ms_per_step_max: timing.max_ms(),
            points_per_s: every_run * points as f64 / (ms / 1e3),
            gb_per_s: bytes / (ms / 1e3) / 1e9,
            gflop_per_s: every_run * flops / (ms / 1e3) / 1e9,
            bound,
            floor_ms: floor_s * 1e3,
            share_of_floor: floor_s * 1e3 / ms,
            speedup_vs_cpu_fused: every_run * fused_ms / ms,
            final_loss: timing.final_loss,
            loss_rel_diff_vs_cpu_fused: (timing.final_loss - fused_loss).abs()
                / fused_loss.abs().max(f64::MIN_POSITIVE),
        });
    }
    Ok(())
}

/// The least time a step can take, given the time to read its data and the time of its
/// arithmetic at the peak rate, and which of the two it is.
fn floor(read_s: f64, compute_s: f64) -> (f64, &'static str) {
    if compute_s > read_s {
        (compute_s, "arithmetic")
    } else {
        (read_s, "memory")
    }
}

/// The GPU path timed like the CPU paths, and the time its adapter takes to read the same
/// data once (its floor). `announce` is called once the engine could be built.
fn time_gpu(
    gpu: &Target,
    student: &Network,
    set: &Points,
    settings: &BenchSettings,
    rule: &StepRule,
    announce: &mut dyn FnMut(),
) -> Result<(Timing, f64)> {
    let mut engine = gpu.engine(student.clone(), set)?.boxed();
    announce();
    let timing = time_engine(engine.as_mut(), settings, rule)?;
    drop(engine);
    Ok((timing, gpu.read_once_seconds(set, settings.repeats)?))
}

/// A sweep engine timed as `time_engine` times one run: every run takes the same steps.
fn time_sweep(
    engine: &mut dyn SweepEngine,
    settings: &BenchSettings,
    rule: &StepRule,
) -> Result<Timing> {
    let rules = vec![Some(*rule); engine.runs()];
    let ms_per_step = time_rounds(settings, |next| {
        let rounds = engine.run_steps(next, settings.steps, &rules)?;
        Ok(rounds.into_iter().find_map(|r| r.stop))
    })?;
    let final_loss = engine.evaluate()?[0].loss(LossKind::Mse);
    Ok(Timing {
        ms_per_step,
        final_loss,
    })
}

/// A warm-up round of `settings.steps` steps, then `settings.repeats` timed rounds, each
/// continuing from the last: `round(first_step)` runs one and says if the descent stopped
/// in it (which leaves nothing to time). The milliseconds per step of each timed round.
fn time_rounds(
    settings: &BenchSettings,
    mut round: impl FnMut(usize) -> Result<Option<crate::descent::EngineStop>>,
) -> Result<Vec<f64>> {
    let mut next = 1;
    let mut run = || -> Result<f64> {
        let start = Instant::now();
        let stop = round(next)?;
        let elapsed = start.elapsed().as_secs_f64();
        if let Some(stop) = stop {
            let what = match stop {
                crate::descent::EngineStop::Flat { step, .. } => {
                    format!("came to a flat spot at step {step}")
                }
                crate::descent::EngineStop::Diverged { step, loss } => {
                    format!("diverged at step {step} (loss {loss:e})")
                }
            };
            return Err(Error::InvalidArgument(format!(
                "the benchmark's descent {what}, so its steps cannot be timed; try a smaller --lr"
            )));
        }
        next += settings.steps;
        Ok(elapsed * 1e3 / settings.steps as f64)
    };
    run()?;
    (0..settings.repeats).map(|_| run()).collect()
}

/// Per-step times of the timed repetitions and the loss after them.
struct Timing {
    ms_per_step: Vec<f64>,
    final_loss: f64,
}

impl Timing {
    fn median_ms(&self) -> f64 {
        let mut sorted = self.ms_per_step.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        }
    }

    fn min_ms(&self) -> f64 {
        self.ms_per_step
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
    }

    fn max_ms(&self) -> f64 {
        self.ms_per_step.iter().copied().fold(0.0, f64::max)
    }
}

/// A warm-up of `steps` steps, then `repeats` timed runs of `steps` steps each, continuing
/// from one another (so every path takes the same steps from the same weights).
fn time_engine(
    engine: &mut dyn Engine,
    settings: &BenchSettings,
    rule: &StepRule,
) -> Result<Timing> {
    let ms_per_step = time_rounds(settings, |next| {
        Ok(engine.run_steps(next, settings.steps, rule)?.stop)
    })?;
    let final_loss = engine.evaluate()?.loss(LossKind::Mse);
    Ok(Timing {
        ms_per_step,
        final_loss,
    })
}

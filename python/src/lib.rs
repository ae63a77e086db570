//! `downhill._core`: the downhill library on numpy arrays, for the Python package around it
//! (`pkg/downhill`). Models cross the boundary as the CLI's JSON model format, so a model
//! saved from Python is one the command reads, and the other way round.
//!
//! The computations (training, prediction, evaluation, the landscape) run with the GIL
//! released; checking and packing the arrays before them does not. A training run looks for Ctrl-C
//! (KeyboardInterrupt) once a round, stops after the round in flight, and says so in its
//! result, with the weights reached.

use std::cell::Cell;
use std::str::FromStr;

use downhill::batches::BatchPlan;
use downhill::data::Strided;
use downhill::descent::{Observer, StepRecord, Validation};
use downhill::device::{DeviceChoice, OpenEngine, Target};
use downhill::landscape::{self, WeightAxis};
use downhill::model_file;
use downhill::optimizer::{Optimizer, Schedule, UpdateRule};
use downhill::verify::Verified;
use downhill::{Activation, Descent, Error, LossKind, Network, Outcome, Points, StopReason};
use ndarray::{Array1, ArrayView2};
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// downhill's error as Python's: bad input is a `ValueError` with the CLI's message, a file
/// that cannot be read or written an `OSError`, and a GPU or verification failure a
/// `RuntimeError`.
fn py_error(error: Error) -> PyErr {
    let message = error.to_string();
    match error {
        Error::Io { .. } => PyOSError::new_err(message),
        Error::Gpu(_)
        | Error::DeviceUnavailable(_)
        | Error::VerificationFailed(_)
        | Error::Unsupported(_)
        | Error::Distributed(_)
        | Error::OnEveryProcess { .. } => PyRuntimeError::new_err(message),
        _ => PyValueError::new_err(message),
    }
}

trait OrPyErr<T> {
    fn or_py(self) -> PyResult<T>;
}

impl<T> OrPyErr<T> for downhill::Result<T> {
    fn or_py(self) -> PyResult<T> {
        self.map_err(py_error)
    }
}

/// A model from its JSON text (the CLI's format).
fn parse_model(json: &str) -> PyResult<Network> {
    model_file::parse(json).map_err(|e| PyValueError::new_err(format!("model: {e}")))
}

fn model_json(net: &Network) -> String {
    model_file::to_json_value(net).to_string()
}

/// The first value of `values` (rows x columns) that is not finite, named as the CLI names
/// a bad cell (rows and columns from 1).
fn check_finite(values: ArrayView2<f32>, what: &str) -> PyResult<()> {
    match values.indexed_iter().find(|(_, v)| !v.is_finite()) {
        Some(((row, col), v)) => Err(PyValueError::new_err(format!(
            "{what}: row {}, column {}: {v} is not a finite number",
            row + 1,
            col + 1
        ))),
        None => Ok(()),
    }
}

/// `array` (`name`) has `expected` columns, which the model `uses` (e.g. "takes 2 inputs").
fn check_width(array: &ArrayView2<f32>, name: &str, expected: usize, uses: &str) -> PyResult<()> {
    match array.ncols() {
        width if width == expected => Ok(()),
        width => Err(PyValueError::new_err(format!(
            "{name} has {width} columns, but the model {uses}"
        ))),
    }
}

/// `x` (points x inputs) has as many columns as `net` takes inputs.
fn check_inputs(net: &Network, x: &ArrayView2<f32>) -> PyResult<()> {
    let inputs = net.inputs();
    check_width(x, "X", inputs, &format!("takes {inputs} inputs"))
}

/// `x` and `y` (points x outputs) fit `net`, each named by what the caller passed.
fn check_widths(net: &Network, x: &ArrayView2<f32>, y: &ArrayView2<f32>) -> PyResult<()> {
    check_inputs(net, x)?;
    let outputs = net.outputs();
    check_width(y, "y", outputs, &format!("gives {outputs} outputs"))
}

/// A numpy array's values as its columns (columns x points), in place: the memory from its
/// first element to its last, and the layout of the elements in it. `None` for a negative
/// stride (a reversed array), which is copied instead.
fn in_place<'a>(rows: &ArrayView2<'a, f32>) -> Option<Strided<'a>> {
    let strides = rows.strides();
    let strides = (
        usize::try_from(strides[1]).ok()?,
        usize::try_from(strides[0]).ok()?,
    );
    let (points, columns) = rows.dim();
    if points == 0 || columns == 0 {
        return None;
    }
    let span = 1 + (columns - 1) * strides.0 + (points - 1) * strides.1;
    // SAFETY: the pointer is aligned for f32: `as_points` copies an array numpy does not
    // call aligned. A numpy array with non-negative strides is a window onto one buffer that
    // starts at its first element and holds its last, so the `span` values from the first
    // element are that buffer's, initialised f32s. The buffer outlives `'a`: the view borrows
    // a `PyReadonlyArray2`, which holds a reference to the array (and through it the buffer)
    // for as long. That nothing writes to the span meanwhile is the caller's part, as for
    // any function that releases the GIL over an array (the README and the docstrings say
    // so): rust-numpy's borrow flag keeps out Rust borrows, not Python's writes.
    let values = unsafe { std::slice::from_raw_parts(rows.as_ptr(), span) };
    Strided::new(values, (columns, points), strides)
}

/// Points `x` (points x inputs) with targets `y` (points x outputs), read in place (see
/// `in_place`), or copied once where their layout is not read in place.
fn points<'a>(x: ArrayView2<'a, f32>, y: ArrayView2<'a, f32>) -> PyResult<Points<'a>> {
    let (points, rows) = (x.nrows(), y.nrows());
    if points != rows {
        return Err(PyValueError::new_err(format!(
            "X has {points} rows but y has {rows}: expected one target row per point"
        )));
    }
    check_finite(x, "X")?;
    check_finite(y, "y")?;
    match (in_place(&x), in_place(&y)) {
        (Some(x), Some(y)) => Points::from_strided(x, y),
        _ => Points::from_views(x.reversed_axes(), y.reversed_axes()),
    }
    .or_py()
}

/// Whether `train` and the other functions read `x` and `y` in place, without a copy (what
/// the tests check of each layout).
#[pyfunction]
fn reads_in_place(x: PyReadonlyArray2<'_, f32>, y: PyReadonlyArray2<'_, f32>) -> PyResult<bool> {
    Ok(points(x.as_array(), y.as_array())?.is_borrowed())
}

/// The device for a `device` argument: `auto`, `cpu` or `gpu`.
fn target(device: &str) -> downhill::Result<Target> {
    Target::resolve(DeviceChoice::from_str(device)?)
}

/// Looks for Ctrl-C once a round: Python's own handler raises KeyboardInterrupt, which is
/// kept, and the run stops after the round in flight.
#[derive(Default)]
struct PythonSignals {
    interrupt: Cell<Option<PyErr>>,
    seen: Cell<bool>,
}

impl Observer for PythonSignals {
    fn observe(&mut self, _history: &[StepRecord], _max_steps: usize) {}

    fn stop_requested(&self) -> bool {
        if !self.seen.get() {
            if let Err(e) = Python::attach(|py| py.check_signals()) {
                self.interrupt.set(Some(e));
                self.seen.set(true);
            }
        }
        self.seen.get()
    }
}

/// What `train` was asked for, gathered from its arguments.
struct Plan {
    widths: Vec<usize>,
    activation: Activation,
    init: Option<Network>,
    seed: u64,
    descent: Descent,
    epochs: usize,
    batch_size: Option<usize>,
    validation_fraction: Option<f64>,
    patience: Option<usize>,
    device: String,
    verify: bool,
}

/// What a run ended with, before it crosses back to Python.
struct Trained {
    outcome: Outcome,
    epoch_losses: Option<Vec<f64>>,
    device: String,
    held_out_variance: Option<f64>,
    verification: Option<String>,
    /// With a held-out set: the weights of the lowest held-out loss (the first, on a tie).
    best_network: Option<Network>,
}

/// The mean over outputs of each output's variance in a set (for R^2 on it: with the MSE,
/// which is the mean over outputs of each output's, `1 - MSE / this` is scikit-learn's
/// variance-weighted R^2).
fn target_variance(set: &Points) -> f64 {
    let targets = set.target_columns();
    let variances = targets.outer_iter().map(|output| {
        let n = output.len() as f64;
        let mean = output.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        output
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n
    });
    variances.sum::<f64>() / targets.nrows() as f64
}

/// Trains as `downhill train` does, on `data`, with the GIL released by the caller.
fn run_training(
    plan: Plan,
    data: Points,
    signals: &mut PythonSignals,
) -> downhill::Result<Trained> {
    let net = match plan.init {
        Some(net) => net,
        None => Network::random(&plan.widths, plan.activation, true, plan.seed)?,
    };
    data.check_shape(net.inputs(), net.outputs(), "training data")?;
    let (data, held_out) = match plan.validation_fraction {
        Some(fraction) => {
            let (training, held_out) = data.split(fraction, plan.seed)?;
            (training, Some(held_out))
        }
        None => (data, None),
    };
    let mut descent = plan.descent;
    let batches = match plan.batch_size {
        Some(size) => Some(BatchPlan::new(data.len(), size, plan.seed)?),
        None => None,
    };
    let per_epoch = batches.as_ref().map_or(1, BatchPlan::per_epoch);
    descent.steps_per_epoch = per_epoch;
    descent.max_steps = plan.epochs.saturating_mul(per_epoch);
    let target = target(&plan.device)?;
    let open = |target: &Target| match batches {
        Some(batches) => target.batch_engine(net.clone(), &data, batches),
        None => target.engine(net.clone(), &data),
    };
    let opened: OpenEngine = open(&target)?;
    let device = if opened.is_gpu() { "gpu" } else { "cpu" };
    let mut evaluator = match &held_out {
        Some(set) => Some(target.evaluator(&net, set)?),
        None => None,
    };
    let mut best: Option<(f64, Network)> = None;
    let mut held_out_loss = |net: &Network| -> downhill::Result<f64> {
        let evaluator = evaluator.as_mut().expect("validating with a held-out set");
        let loss = evaluator.evaluate(net)?.loss(LossKind::Mse);
        if best.as_ref().is_none_or(|(lowest, _)| loss < *lowest) {
            best = Some((loss, net.clone()));
        }
        Ok(loss)
    };
    let validation = held_out.as_ref().map(|_| Validation {
        loss: &mut held_out_loss,
        patience: plan.patience,
    });
    let (outcome, verification) = if plan.verify {
        // Every round checked against the other path, as `train --verify`.
        let against = open(&opened.checker())?.boxed();
        let mut verified = Verified::new(opened.boxed(), against);
        let outcome = descent.run_validated(&mut verified, &mut [signals], validation)?;
        let failure = verified.report()?.failure().map(|e| e.to_string());
        (outcome, failure)
    } else {
        let mut engine = opened.boxed();
        let outcome = descent.run_validated(engine.as_mut(), &mut [signals], validation)?;
        (outcome, None)
    };
    Ok(Trained {
        epoch_losses: batches.map(|b| b.epoch_losses(&outcome.history)),
        outcome,
        device: device.into(),
        held_out_variance: held_out.as_ref().map(target_variance),
        verification,
        best_network: best.map(|(_, net)| net),
    })
}

/// Trains a network on `x` (points x inputs) and `y` (points x outputs), float32; returns a
/// dict with the model (JSON), the loss curve and how the run ended.
#[pyfunction]
#[pyo3(signature = (
    x, y, *, hidden, activation, optimizer, learning_rate, epochs, batch_size, momentum,
    beta1, beta2, eps, weight_decay, tol, seed, device, validation_fraction, patience, init,
    verify
))]
#[allow(clippy::too_many_arguments)]
fn train<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f32>,
    y: PyReadonlyArray2<'py, f32>,
    hidden: Vec<usize>,
    activation: &str,
    optimizer: &str,
    learning_rate: f64,
    epochs: usize,
    batch_size: Option<usize>,
    momentum: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    tol: f64,
    seed: u64,
    device: String,
    validation_fraction: Option<f64>,
    patience: Option<usize>,
    init: Option<String>,
    verify: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let init = init.as_deref().map(parse_model).transpose()?;
    if let Some(net) = &init {
        check_widths(net, &x.as_array(), &y.as_array())?;
    }
    let data = points(x.as_array(), y.as_array())?;
    let optimizer = match optimizer {
        "gd" => Optimizer::Gd,
        "momentum" | "nesterov" => Optimizer::Momentum {
            momentum,
            nesterov: optimizer == "nesterov",
        },
        "adam" => Optimizer::Adam { beta1, beta2, eps },
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown optimizer '{other}' (expected gd, momentum, nesterov or adam)"
            )))
        }
    };
    let mut widths = vec![data.inputs()];
    widths.extend_from_slice(&hidden);
    widths.push(data.outputs());
    let descent = Descent {
        learning_rate,
        tolerance: tol,
        loss: LossKind::Mse,
        update: UpdateRule {
            optimizer,
            weight_decay,
            schedule: Schedule::Constant,
        },
        ..Descent::default()
    };
    descent.validate().or_py()?;
    let plan = Plan {
        widths,
        activation: Activation::from_str(activation).or_py()?,
        init,
        seed,
        descent,
        epochs,
        batch_size,
        validation_fraction,
        patience,
        device,
        verify,
    };
    let (trained, interrupt) = py.detach(move || {
        let mut signals = PythonSignals::default();
        let trained = run_training(plan, data, &mut signals);
        (trained, signals.interrupt.into_inner())
    });
    let trained = trained.or_py()?;
    let outcome = &trained.outcome;
    let result = PyDict::new(py);
    result.set_item("model", model_json(&outcome.network))?;
    result.set_item("best_model", trained.best_network.as_ref().map(model_json))?;
    let losses: Vec<f64> = outcome.history.iter().map(|r| r.loss).collect();
    result.set_item("step_losses", losses)?;
    result.set_item("epoch_losses", trained.epoch_losses.clone())?;
    result.set_item("validation_losses", outcome.validation_history.clone())?;
    result.set_item("held_out_variance", trained.held_out_variance)?;
    result.set_item("steps", outcome.steps())?;
    result.set_item("steps_per_epoch", outcome.steps_per_epoch)?;
    result.set_item("final_loss", outcome.final_loss)?;
    result.set_item("seconds", outcome.elapsed.as_secs_f64())?;
    result.set_item("stopped", outcome.stopped.name())?;
    let best_epoch = match outcome.stopped {
        StopReason::Early { best_step } => Some(best_step / outcome.steps_per_epoch.max(1)),
        _ => None,
    };
    result.set_item("best_epoch", best_epoch)?;
    result.set_item("engine_error", outcome.engine_error.clone())?;
    result.set_item("device", trained.device.clone())?;
    result.set_item("verification", trained.verification.clone())?;
    result.set_item("interrupted", interrupt.is_some())?;
    // What Python's own signal handler raised (KeyboardInterrupt, or a handler's own), to be
    // raised again once the weights reached are kept.
    result.set_item("interrupt", interrupt.map(|e| e.into_value(py)))?;
    Ok(result)
}

/// The predictions of a model (JSON) for `x` (points x inputs): points x outputs, float32.
#[pyfunction]
#[pyo3(signature = (model, x, device="auto"))]
fn predict<'py>(
    py: Python<'py>,
    model: &str,
    x: PyReadonlyArray2<'py, f32>,
    device: &str,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let net = parse_model(model)?;
    let x = x.as_array();
    check_inputs(&net, &x)?;
    check_finite(x, "X")?;
    // The kernels read inputs column by column: one copy of X, transposed (a Fortran-order X
    // is copied as it is).
    let columns = x.t().as_standard_layout().into_owned();
    let device = device.to_string();
    let predicted = py
        .detach(move || target(&device)?.predict(&net, columns.view()))
        .or_py()?;
    Ok(predicted.reversed_axes().into_pyarray(py))
}

/// The loss (MSE) of a model at `x`, `y` and its slope along every weight: a dict with
/// `points`, `sse`, `mse` and `gradient` (weight name to slope), as `eval --json`.
#[pyfunction]
#[pyo3(signature = (model, x, y, device="auto"))]
fn evaluate<'py>(
    py: Python<'py>,
    model: &str,
    x: PyReadonlyArray2<'py, f32>,
    y: PyReadonlyArray2<'py, f32>,
    device: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let net = parse_model(model)?;
    check_widths(&net, &x.as_array(), &y.as_array())?;
    let data = points(x.as_array(), y.as_array())?;
    let device = device.to_string();
    let (evaluation, net) = py
        .detach(move || -> downhill::Result<_> {
            data.check_shape(net.inputs(), net.outputs(), "evaluation data")?;
            Ok((target(&device)?.evaluate(&net, &data)?, net))
        })
        .or_py()?;
    let result = PyDict::new(py);
    result.set_item("points", evaluation.points)?;
    result.set_item("sse", evaluation.sse)?;
    result.set_item("mse", evaluation.mse())?;
    let gradient = PyDict::new(py);
    for (name, slope) in net
        .param_names()
        .into_iter()
        .zip(evaluation.gradient(LossKind::Mse))
    {
        gradient.set_item(name, slope)?;
    }
    result.set_item("gradient", gradient)?;
    Ok(result)
}

/// The loss over a grid of one or two weights (every other weight held): a dict with `axes`
/// (each weight's grid values), `losses` (one axis: `(grid,)`; two: `(grid_y, grid_x)`),
/// `current` (the weights as the model has them), `current_loss` and `slope`.
#[pyfunction]
#[pyo3(signature = (model, x, y, weights, ranges, grid, device="auto"))]
#[allow(clippy::too_many_arguments)]
fn landscape_of<'py>(
    py: Python<'py>,
    model: &str,
    x: PyReadonlyArray2<'py, f32>,
    y: PyReadonlyArray2<'py, f32>,
    weights: Vec<String>,
    ranges: Vec<Option<(f64, f64)>>,
    grid: usize,
    device: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let net = parse_model(model)?;
    check_widths(&net, &x.as_array(), &y.as_array())?;
    let data = points(x.as_array(), y.as_array())?;
    let axes = weights
        .iter()
        .zip(ranges.iter().chain(std::iter::repeat(&None)))
        .map(|(name, range)| {
            WeightAxis::new(&net, name, range.map(|r| r.0), range.map(|r| r.1), grid)
        })
        .collect::<downhill::Result<Vec<_>>>()
        .or_py()?;
    let device = device.to_string();
    let computed = py
        .detach(move || {
            data.check_shape(net.inputs(), net.outputs(), "landscape data")?;
            landscape::compute(&target(&device)?, &net, &data, axes, &mut |_, _| {})
        })
        .or_py()?;
    let result = PyDict::new(py);
    let axes = PyList::empty(py);
    for axis in &computed.axes {
        axes.append(Array1::from(axis.values.clone()).into_pyarray(py))?;
    }
    let losses = Array1::from(computed.losses.clone());
    let losses = match computed.axes.as_slice() {
        [x, y] => losses
            .into_shape_with_order((y.values.len(), x.values.len()))
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?
            .into_pyarray(py)
            .into_any(),
        _ => losses.into_pyarray(py).into_any(),
    };
    result.set_item("axes", axes)?;
    result.set_item("losses", losses)?;
    result.set_item("current", computed.current.clone())?;
    result.set_item("current_loss", computed.current_loss)?;
    result.set_item("slope", computed.slope.clone())?;
    result.set_item("points", computed.points)?;
    Ok(result)
}

/// The GPU adapters wgpu finds: a list of dicts (`name`, `backend`, `device_type`,
/// `software`).
#[pyfunction]
fn devices(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let found = PyList::empty(py);
    for adapter in py.detach(downhill::gpu::list_adapters) {
        let one = PyDict::new(py);
        one.set_item("name", adapter.name)?;
        one.set_item("backend", adapter.backend)?;
        one.set_item("device_type", adapter.device_type)?;
        one.set_item("software", adapter.software)?;
        found.append(one)?;
    }
    Ok(found)
}

/// A model's JSON as the CLI writes it, checked (a `ValueError` says what is wrong).
#[pyfunction]
fn check_model(model: &str) -> PyResult<String> {
    Ok(model_json(&parse_model(model)?))
}

/// The model in a file the CLI wrote, as JSON.
#[pyfunction]
fn load_model(path: std::path::PathBuf) -> PyResult<String> {
    Ok(model_json(&model_file::load(&path).or_py()?))
}

/// Writes a model (JSON) to `path` in the CLI's format, atomically.
#[pyfunction]
fn save_model(model: &str, path: std::path::PathBuf) -> PyResult<()> {
    model_file::save(&parse_model(model)?, &path).or_py()
}

/// The weights' names in a model's flat order (`l0.n0.w0`, ...).
#[pyfunction]
fn weight_names(model: &str) -> PyResult<Vec<String>> {
    Ok(parse_model(model)?.param_names())
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(predict, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(landscape_of, m)?)?;
    m.add_function(wrap_pyfunction!(devices, m)?)?;
    m.add_function(wrap_pyfunction!(check_model, m)?)?;
    m.add_function(wrap_pyfunction!(load_model, m)?)?;
    m.add_function(wrap_pyfunction!(save_model, m)?)?;
    m.add_function(wrap_pyfunction!(weight_names, m)?)?;
    m.add_function(wrap_pyfunction!(reads_in_place, m)?)?;
    Ok(())
}

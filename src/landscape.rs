//! The loss over a grid of weight values, every other weight held fixed: the lesson's curve
//! over one weight and surface over two, with the slope at the current weights and the steps
//! gradient descent takes over just those weights.

use crate::data::Points;
use crate::device::Target;
use crate::error::{number, Error, Result};
use crate::loss::LossKind;
use crate::network::Network;
use crate::optimizer::{OptimizerState, UpdateRule};

/// Grid points evaluated per pass over the data (and per progress update).
const BATCH: usize = 2048;

/// One weight varied over a range.
#[derive(Clone, Debug)]
pub struct WeightAxis {
    /// The weight's name (`l0.n1.w0`).
    pub name: String,
    /// Its index in the flat parameter layout.
    pub index: usize,
    /// The grid values, evenly spaced.
    pub values: Vec<f64>,
}

impl WeightAxis {
    /// `grid` values of weight `name` of `net` from `from` to `to`; without a range, centred
    /// on the weight's current value (current +- max(1, |current|)).
    pub fn new(
        net: &Network,
        name: &str,
        from: Option<f64>,
        to: Option<f64>,
        grid: usize,
    ) -> Result<Self> {
        let index = net.param_index(name)?;
        if grid < 2 {
            return Err(Error::InvalidArgument(format!(
                "--grid {grid}: a grid needs at least 2 points per axis"
            )));
        }
        let current = net.params()[index];
        let half = current.abs().max(1.0);
        let (lo, hi) = (from.unwrap_or(current - half), to.unwrap_or(current + half));
        if !(lo.is_finite() && hi.is_finite() && lo < hi && (hi - lo).is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "--from {} --to {}: the range must be finite, with --from below --to and a \
                 finite width",
                number(lo),
                number(hi)
            )));
        }
        crate::limits::check_memory(&format!("--grid {grid}"), crate::limits::bytes_for(grid, 8))?;
        // The last value is `hi` itself, not a rounding of it.
        let values = (0..grid)
            .map(|i| {
                if i + 1 == grid {
                    hi
                } else {
                    lo + (hi - lo) * i as f64 / (grid - 1) as f64
                }
            })
            .collect();
        Ok(WeightAxis {
            name: name.to_string(),
            index,
            values,
        })
    }
}

/// The loss (MSE) over one or two weight axes.
#[derive(Clone, Debug)]
pub struct Landscape {
    /// One axis (a curve) or two (a surface; the first is x).
    pub axes: Vec<WeightAxis>,
    /// The loss at every grid point, x fastest: `losses[y * nx + x]`.
    pub losses: Vec<f64>,
    /// The axes' weights as the model has them.
    pub current: Vec<f64>,
    /// The loss at the model's weights.
    pub current_loss: f64,
    /// The slope of the loss along each axis at the model's weights.
    pub slope: Vec<f64>,
    /// Points the loss is taken over.
    pub points: usize,
}

/// One gradient-descent step over the axes' weights only.
#[derive(Clone, Debug, PartialEq)]
pub struct AxisStep {
    /// The axes' weights before the step.
    pub weights: Vec<f64>,
    /// The loss there.
    pub loss: f64,
}

/// The number of grid points over `axes`, checked (with the memory of one loss each) against
/// the memory available, before anything of that size is allocated.
pub fn grid_points(axes: &[WeightAxis]) -> Result<usize> {
    let total = axes
        .iter()
        .try_fold(1usize, |n, a| n.checked_mul(a.values.len()));
    let sizes: Vec<String> = axes.iter().map(|a| a.values.len().to_string()).collect();
    crate::limits::check_memory(
        &format!("a grid of {}", sizes.join(" x ")),
        total.and_then(|t| crate::limits::bytes_for(t, 8)),
    )?;
    Ok(total.unwrap_or(usize::MAX))
}

/// Computes the landscape of `net` over `data` along `axes` (one or two) on the chosen
/// device. `progress(done, total)` is called after each batch of grid points.
pub fn compute(
    target: &Target,
    net: &Network,
    data: &Points,
    axes: Vec<WeightAxis>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Landscape> {
    if axes.is_empty() || axes.len() > 2 {
        return Err(Error::InvalidArgument(
            "a landscape takes one or two --weight".into(),
        ));
    }
    if axes.len() == 2 && axes[0].index == axes[1].index {
        return Err(Error::InvalidArgument(format!(
            "--weight {} given twice: a surface needs two different weights",
            axes[0].name
        )));
    }
    let base = net.params();
    let nx = axes[0].values.len();
    let total = grid_points(&axes)?;
    // Grid point k: x fastest.
    let point = |k: usize| -> Vec<f64> {
        match &axes[..] {
            [x] => vec![x.values[k]],
            [x, y] => vec![x.values[k % nx], y.values[k / nx]],
            _ => unreachable!("checked above"),
        }
    };
    let scale = 1.0 / (data.len() * data.outputs()) as f64;
    let mut losses = Vec::with_capacity(total);
    // One weight on the CPU: the closed form that computes everything but the swept node
    // once per point (a weight of the last two layers).
    if let [axis] = &axes[..] {
        if !target.is_gpu() {
            if let Some(sse) = crate::cpu::sse_along_one_weight(net, data, axis.index, &axis.values)
            {
                losses.extend(sse.into_iter().map(|s| s * scale));
                progress(total, total);
            }
        }
    }
    // Set up once (on the GPU: the data uploaded, the kernel built), used by every batch.
    if losses.len() < total {
        let evaluator = target.sse_of_many_evaluator(net, data)?;
        for start in (0..total).step_by(BATCH) {
            let nets = (start..(start + BATCH).min(total))
                .map(|k| with_weights(net, &base, &axes, &point(k)))
                .collect::<Result<Vec<_>>>()?;
            losses.extend(evaluator.sse(&nets)?.into_iter().map(|sse| sse * scale));
            progress(losses.len(), total);
        }
    }
    if !losses.iter().any(|l| l.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "the loss is not a finite number anywhere on this grid (from {} to {}): the \
             weights overflow single precision there; choose a smaller range with --from and --to",
            number(axes[0].values[0]),
            number(axes[0].values[nx - 1])
        )));
    }
    let evaluation = target.evaluate(net, data)?;
    let gradient = evaluation.gradient(LossKind::Mse);
    Ok(Landscape {
        current: axes.iter().map(|a| base[a.index]).collect(),
        slope: axes.iter().map(|a| gradient[a.index]).collect(),
        current_loss: evaluation.loss(LossKind::Mse),
        points: data.len(),
        axes,
        losses,
    })
}

/// Gradient descent on the axes' weights alone (every other weight held fixed), from the
/// model's weights: `steps` steps of `rule` (the lesson's `learning_rate` times the slope, or
/// momentum, Adam, ...). Returns every point visited, the start included (`steps + 1`
/// entries).
pub fn descend(
    target: &Target,
    net: &Network,
    data: &Points,
    axes: &[WeightAxis],
    learning_rate: f64,
    rule: &UpdateRule,
    steps: usize,
) -> Result<Vec<AxisStep>> {
    if !(learning_rate.is_finite() && learning_rate > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "--lr {}: the learning rate must be a positive number",
            number(learning_rate)
        )));
    }
    let base = net.params();
    let mut weights: Vec<f64> = axes.iter().map(|a| base[a.index]).collect();
    let mut visited = Vec::with_capacity(steps.min(1 << 20) + 1);
    // Set up once: on the GPU the data is uploaded and the kernels built a single time.
    let mut evaluator = target.evaluator(net, data)?;
    let mut state = OptimizerState::default();
    for step in 0..=steps {
        let at = with_weights(net, &base, axes, &weights)?;
        let evaluation = evaluator.evaluate(&at)?;
        let loss = evaluation.loss(LossKind::Mse);
        visited.push(AxisStep {
            weights: weights.clone(),
            loss,
        });
        if !loss.is_finite() || step == steps {
            break;
        }
        let gradient = evaluation.gradient(LossKind::Mse);
        // The rule sees only the drawn weights (the others stay where the model has them).
        let along: Vec<f64> = axes.iter().map(|axis| gradient[axis.index]).collect();
        rule.apply(&mut weights, &along, learning_rate, &mut state);
    }
    Ok(visited)
}

/// `net` with the axes' weights set to `values`.
fn with_weights(
    net: &Network,
    base: &[f64],
    axes: &[WeightAxis],
    values: &[f64],
) -> Result<Network> {
    let mut params = base.to_vec();
    for (axis, &v) in axes.iter().zip(values) {
        params[axis.index] = v;
    }
    let mut out = net.clone();
    out.set_params(&params)?;
    Ok(out)
}

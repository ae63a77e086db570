//! The loss against the step: the lesson's "Iterations" against the mean squared error; for a
//! sweep, one curve per run with a legend, the runs that diverged marked where they stopped.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{
    encode, finite_range, loss_label, padded, render, titled, DrawResult, Figure, Marked, CURVE,
    FONT,
};
use crate::descent::StepRecord;
use crate::error::Result;

/// Runs named in a sweep's legend.
const LEGEND_RUNS: usize = 12;

/// One run's curve.
#[derive(Clone, Debug)]
pub struct Curve<'a> {
    /// The legend's text for it.
    pub label: String,
    pub history: &'a [StepRecord],
    /// The run diverged after its history: a cross marks where it stopped.
    pub diverged: bool,
}

/// The loss against the step, for one run or several.
struct LossCurve<'a> {
    curves: &'a [Curve<'a>],
    /// Steps made before this history (a resumed run): added to every step number.
    offset: usize,
    title: &'a str,
    log_scale: bool,
}

impl Figure for LossCurve<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let area = titled(root, self.title)?;
        let offset = self.offset as f64;
        let records = || self.curves.iter().flat_map(|c| c.history.iter());
        let first = records().map(|r| r.step).min().unwrap_or(0) as f64 + offset;
        let last = records().map(|r| r.step).max().unwrap_or(1) as f64 + offset;
        let x_range = first..last.max(first + 1.0);
        let (lo, hi) = finite_range(records().map(|r| r.loss));
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (1.0, 1.0) };
        // With several runs, a diverging one would flatten every other curve: the axis stops
        // a little above the highest starting loss, and a run that climbs past it leaves the
        // picture at the top (its cross drawn there).
        let single = self.curves.len() == 1;
        let ceiling = self
            .curves
            .iter()
            .filter_map(|c| c.history.first().map(|r| r.loss))
            .filter(|l| l.is_finite())
            .fold(f64::NEG_INFINITY, f64::max)
            * 1.5;
        let hi = if !single && ceiling.is_finite() && ceiling > lo {
            hi.min(ceiling)
        } else {
            hi
        };
        let lines: Vec<Vec<(f64, f64)>> = self
            .curves
            .iter()
            .map(|c| {
                c.history
                    .iter()
                    .filter(|r| r.loss.is_finite() && (!self.log_scale || r.loss > 0.0))
                    .map(|r| (r.step as f64 + offset, r.loss))
                    .collect()
            })
            .collect();
        let colour = |i: usize| -> RGBColor {
            if single {
                CURVE
            } else {
                let c = Palette99::pick(i).to_rgba();
                RGBColor(c.0, c.1, c.2)
            }
        };
        let mut builder = ChartBuilder::on(&area);
        builder
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(90);
        macro_rules! finish {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc("Iterations")
                    .y_desc("Mean squared error")
                    // Steps are whole: no label between two of them.
                    .x_label_formatter(&|v| {
                        if (v - v.round()).abs() < 1e-9 {
                            format!("{v:.0}")
                        } else {
                            String::new()
                        }
                    })
                    .y_label_formatter(&|v| loss_label(*v))
                    .label_style((FONT, 15))
                    .axis_desc_style((FONT, 17))
                    .draw()?;
                for (i, (curve, line)) in self.curves.iter().zip(&lines).enumerate() {
                    let c = colour(i);
                    let end = line.last().copied();
                    let label = if curve.diverged {
                        format!("{} (diverged)", curve.label)
                    } else {
                        curve.label.clone()
                    };
                    let series = chart
                        .draw_series(LineSeries::new(line.iter().copied(), c.stroke_width(2)))?;

                    // A legend of hundreds of runs would cover the picture: the first ones,
                    // then how many more.
                    if i < LEGEND_RUNS || self.curves.len() == LEGEND_RUNS + 1 {
                        series.label(label).legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                        });
                    } else if i == LEGEND_RUNS {
                        let more = self.curves.len() - LEGEND_RUNS;
                        series
                            .label(format!("and {more} more runs"))
                            .legend(|(x, y)| EmptyElement::at((x, y)));
                    }
                    // A run of no steps is one point, which a line does not show.
                    if let [only] = line[..] {
                        chart.draw_series(std::iter::once(Circle::new(only, 4, c.filled())))?;
                    }
                    if let (true, Some((x, y))) = (curve.diverged, end) {
                        chart.draw_series(std::iter::once(Cross::new(
                            (x, y.min(hi)),
                            8,
                            c.stroke_width(3),
                        )))?;
                    }
                }
                chart
                    .configure_series_labels()
                    .label_font((FONT, 15))
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .draw()?;
            }};
        }
        if self.log_scale {
            let lo = if lo > 0.0 {
                lo
            } else {
                hi.abs().max(1e-12) * 1e-6
            };
            let range = (lo / 1.5)..(hi.max(lo) * 1.5);
            // A label on every decade the curve spans, and on its last value.
            let mut marks: Vec<f64> = (lo.log10().floor() as i32..=hi.log10().ceil() as i32)
                .map(|e| 10f64.powi(e))
                .filter(|v| range.contains(v))
                .collect();
            if single {
                if let Some(&(_, end)) = lines[0].last() {
                    marks.push(end);
                }
            }
            marks.sort_by(f64::total_cmp);
            finish!(builder.build_cartesian_2d(
                x_range,
                Marked {
                    range,
                    log: true,
                    marks
                }
            )?);
        } else {
            finish!(builder.build_cartesian_2d(x_range, padded(lo.min(0.0), hi))?);
        }
        Ok(())
    }
}

/// Draws the loss against the step into `path`.
pub fn loss_curve(
    path: &Path,
    history: &[StepRecord],
    title: &str,
    log_scale: bool,
    size: (u32, u32),
) -> Result<()> {
    let curves = [Curve {
        label: "loss".into(),
        history,
        diverged: false,
    }];
    let figure = LossCurve {
        curves: &curves,
        offset: 0,
        title,
        log_scale,
    };
    render(&figure, path, size)
}

/// The loss curve encoded for `path`'s type, for a caller that writes it among other outputs;
/// the steps are numbered on from `offset`.
pub fn loss_curve_bytes(
    path: &Path,
    history: &[StepRecord],
    offset: usize,
    title: &str,
    log_scale: bool,
    size: (u32, u32),
) -> Result<Vec<u8>> {
    let curves = [Curve {
        label: "loss".into(),
        history,
        diverged: false,
    }];
    loss_curves_bytes(path, &curves, offset, title, log_scale, size)
}

/// Several runs' loss curves (a sweep) in one picture, encoded for `path`'s type.
pub fn loss_curves_bytes(
    path: &Path,
    curves: &[Curve],
    offset: usize,
    title: &str,
    log_scale: bool,
    size: (u32, u32),
) -> Result<Vec<u8>> {
    let figure = LossCurve {
        curves,
        offset,
        title,
        log_scale,
    };
    encode(&figure, path, size)
}

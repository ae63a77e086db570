//! The loss against the step: the lesson's "Iterations" against the mean squared error.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{
    encode, finite_range, loss_label, padded, render, titled, DrawResult, Figure, Marked, CURVE,
    FONT,
};
use crate::descent::StepRecord;
use crate::error::Result;

/// The loss against the step.
struct LossCurve<'a> {
    history: &'a [StepRecord],
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
        let first = self.history.first().map_or(0, |r| r.step) as f64 + offset;
        let last = self.history.last().map_or(1, |r| r.step) as f64 + offset;
        let x_range = first..last.max(first + 1.0);
        let (lo, hi) = finite_range(self.history.iter().map(|r| r.loss));
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (1.0, 1.0) };
        let points: Vec<(f64, f64)> = self
            .history
            .iter()
            .filter(|r| r.loss.is_finite() && (!self.log_scale || r.loss > 0.0))
            .map(|r| (r.step as f64 + offset, r.loss))
            .collect();
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
                    .x_label_formatter(&|v| format!("{v:.0}"))
                    .y_label_formatter(&|v| loss_label(*v))
                    .label_style((FONT, 15))
                    .axis_desc_style((FONT, 17))
                    .draw()?;
                chart
                    .draw_series(LineSeries::new(points, CURVE.stroke_width(2)))?
                    .label("loss")
                    .legend(|(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], CURVE.stroke_width(2))
                    });
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
            if let Some(&(_, end)) = points.last() {
                marks.push(end);
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
    let figure = LossCurve {
        history,
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
    let figure = LossCurve {
        history,
        offset,
        title,
        log_scale,
    };
    encode(&figure, path, size)
}

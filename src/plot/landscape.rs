//! The loss over one weight (the curve, its tangent at the current value and the numbered
//! descent steps) or over two (a heatmap with contour lines, a colour bar and the descent path).

use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;

use super::{
    finite_range, loss_label, padded, render, tick, titled, DrawResult, Figure, Marked, CURVE,
    FONT, STEPS, TANGENT,
};
use crate::error::Result;
use crate::landscape::{AxisStep, Landscape};

/// A landscape: over one weight, the curve with the tangent at the current value and the
/// descent steps; over two, the surface (see [`LandscapeFigure::draw_surface`]).
struct LandscapeFigure<'a> {
    land: &'a Landscape,
    paths: &'a [DescentPath],
    title: &'a str,
}

/// The steps of one gradient descent over the landscape's weights.
#[derive(Clone, Debug)]
pub struct DescentPath {
    pub learning_rate: f64,
    /// The update rule's name when it is not the lesson's plain gradient descent (`adam`,
    /// `momentum`, ...), for the legend.
    pub rule: Option<String>,
    pub steps: Vec<AxisStep>,
}

/// The colours of the descent paths: the lesson's orange for one path; with several (a sweep
/// of learning rates), one colour each, none of them the tangent's red.
fn path_colour(index: usize, paths: usize) -> RGBColor {
    const SWEEP: [RGBColor; 8] = [
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(23, 190, 207),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(188, 189, 34),
        RGBColor(127, 127, 127),
    ];
    if paths == 1 {
        STEPS
    } else {
        SWEEP[index % SWEEP.len()]
    }
}

impl Figure for LandscapeFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        if self.land.axes.len() == 1 {
            self.draw_curve(root)
        } else {
            self.draw_surface(root)
        }
    }
}

impl LandscapeFigure<'_> {
    /// The legend text of a descent series.
    fn descent_label(path: &DescentPath, what: &str) -> String {
        format!(
            "{} {what} (learning rate {})",
            path.rule.as_deref().unwrap_or("gradient descent"),
            crate::error::number(path.learning_rate)
        )
    }

    fn draw_curve<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let land = self.land;
        let axis = &land.axes[0];
        let xs = &axis.values;
        let (x0, x1) = (xs[0], xs[xs.len() - 1]);
        let (lo, hi) = finite_range(land.losses.iter().copied());
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let y_range = padded(lo.min(0.0), hi);
        let area = titled(root, self.title)?;
        let mut chart = ChartBuilder::on(&area)
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(90)
            .build_cartesian_2d(x0..x1, y_range.clone())?;
        chart
            .configure_mesh()
            .x_desc(format!("weight {}", axis.name))
            .y_desc("loss (mean squared error)")
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .draw()?;
        let curve = xs
            .iter()
            .zip(&land.losses)
            .filter(|(_, l)| l.is_finite())
            .map(|(&x, &l)| (x, l));
        chart
            .draw_series(LineSeries::new(curve, CURVE.stroke_width(2)))?
            .label("loss")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], CURVE.stroke_width(2)));

        // The tangent over a quarter of the range on each side, clipped to the plot.
        let (w0, l0, slope) = (land.current[0], land.current_loss, land.slope[0]);
        let half = (x1 - x0) / 4.0;
        let tangent = [w0 - half, w0 + half]
            .map(|x| (x, l0 + slope * (x - w0)))
            .to_vec();
        let inside = |(x, y): &(f64, f64)| y_range.contains(y) && (x0..=x1).contains(x);
        chart
            .draw_series(LineSeries::new(
                clip_segment(tangent[0], tangent[1], &y_range),
                TANGENT.stroke_width(2),
            ))?
            .label(format!("tangent at {w0:.3}: slope {slope:.4}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], TANGENT.stroke_width(2)));
        chart.draw_series(
            [(w0, l0)]
                .into_iter()
                .filter(inside)
                .map(|p| Circle::new(p, 6, TANGENT.filled())),
        )?;

        let single = self.paths.len() == 1;
        for (k, descent) in self.paths.iter().enumerate() {
            let colour = path_colour(k, self.paths.len());
            let pieces =
                visible_pieces(descent.steps.iter().map(|s| (s.weights[0], s.loss)), inside);
            let label = Self::descent_label(descent, "steps");
            chart
                .draw_series(LineSeries::new(std::iter::empty(), colour.stroke_width(1)))?
                .label(label)
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, colour.filled()));
            for piece in &pieces {
                let line = piece.iter().map(|&(_, p)| p);
                chart.draw_series(LineSeries::new(line, colour.stroke_width(1)))?;
            }
            // Each visible point with its step number.
            let path: Vec<(usize, (f64, f64))> = pieces.into_iter().flatten().collect();
            chart.draw_series(
                path.iter()
                    .map(|&(_, p)| Circle::new(p, 5, colour.filled())),
            )?;
            if !single {
                // Several paths: numbers would crowd each other.
                continue;
            }
            // Numbers only where they do not crowd each other: a label at least 22 pixels
            // from every label drawn before it (the first and the last are always tried).
            let mut labelled: Vec<(i32, i32)> = Vec::new();
            let mut order: Vec<usize> = (0..path.len()).collect();
            if let Some(last) = order.pop() {
                order.insert(1.min(order.len()), last);
            }
            for i in order {
                let (step, point) = path[i];
                let at = chart.backend_coord(&point);
                let clear = labelled.iter().all(|q| {
                    let (dx, dy) = ((q.0 - at.0) as f64, (q.1 - at.1) as f64);
                    (dx * dx + dy * dy).sqrt() >= 22.0
                });
                if clear {
                    labelled.push(at);
                    chart.draw_series(std::iter::once(
                        EmptyElement::at(point) + Text::new(step.to_string(), (6, -18), (FONT, 14)),
                    ))?;
                }
            }
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperMiddle)
            .draw()?;
        Ok(())
    }
}

/// The part of the segment `a`-`b` whose loss lies inside `y_range`.
fn clip_segment(a: (f64, f64), b: (f64, f64), y_range: &Range<f64>) -> Vec<(f64, f64)> {
    let clip = |p: (f64, f64), q: (f64, f64)| -> (f64, f64) {
        let y = p.1.clamp(y_range.start, y_range.end);
        if (q.1 - p.1).abs() < f64::EPSILON {
            p
        } else {
            (p.0 + (q.0 - p.0) * (y - p.1) / (q.1 - p.1), y)
        }
    };
    vec![clip(a, b), clip(b, a)]
}

impl LandscapeFigure<'_> {
    /// The loss over two weights: heatmap (colour by log10 of the loss), contour lines,
    /// colour bar, the current weights and the descent path.
    fn draw_surface<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let land = self.land;
        let (xs, ys) = (&land.axes[0].values, &land.axes[1].values);
        let (nx, ny) = (xs.len(), ys.len());
        let (dx, dy) = (xs[1] - xs[0], ys[1] - ys[0]);
        // Colour by log10(loss): losses span orders of magnitude around a minimum.
        let floor = land
            .losses
            .iter()
            .copied()
            .filter(|l| l.is_finite() && *l > 0.0)
            .fold(f64::INFINITY, f64::min);
        let floor = if floor.is_finite() { floor } else { 1e-12 };
        let level: Vec<f64> = land
            .losses
            .iter()
            .map(|&l| {
                if l.is_finite() {
                    l.max(floor).log10()
                } else {
                    f64::NAN
                }
            })
            .collect();
        let (lo, hi) = finite_range(level.iter().copied());
        let (lo, hi) = if lo.is_finite() && hi > lo {
            (lo, hi)
        } else {
            (lo.min(0.0), lo.max(0.0) + 1.0)
        };

        let area = titled(root, self.title)?;
        let (main, bar) = area.split_horizontally(area.dim_in_pixel().0.saturating_sub(130));
        let x_range = (xs[0] - dx / 2.0)..(xs[nx - 1] + dx / 2.0);
        let y_range = (ys[0] - dy / 2.0)..(ys[ny - 1] + dy / 2.0);
        let mut chart = ChartBuilder::on(&main)
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(x_range.clone(), y_range.clone())?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(format!("weight {}", land.axes[0].name))
            .y_desc(format!("weight {}", land.axes[1].name))
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .draw()?;
        chart.draw_series((0..ny).flat_map(|j| {
            let level = &level;
            (0..nx).map(move |i| {
                let v = level[j * nx + i];
                let colour = if v.is_finite() {
                    ViridisRGB.get_color_normalized(v, lo, hi)
                } else {
                    RGBColor(255, 255, 255)
                };
                Rectangle::new(
                    [
                        (xs[i] - dx / 2.0, ys[j] - dy / 2.0),
                        (xs[i] + dx / 2.0, ys[j] + dy / 2.0),
                    ],
                    colour.filled(),
                )
            })
        }))?;

        // Contour lines at ten evenly spaced levels of log10(loss).
        let thresholds: Vec<f64> = (1..10).map(|k| lo + (hi - lo) * k as f64 / 10.0).collect();
        let filled: Vec<f64> = level
            .iter()
            .map(|v| if v.is_finite() { *v } else { hi })
            .collect();
        if let Ok(lines) = contour::ContourBuilder::new(nx, ny, true)
            .x_origin(xs[0] - dx / 2.0)
            .y_origin(ys[0] - dy / 2.0)
            .x_step(dx)
            .y_step(dy)
            .lines(&filled, &thresholds)
        {
            let style = WHITE.mix(0.7).stroke_width(1);
            for line in &lines {
                for part in line.geometry().0.iter() {
                    chart.draw_series(std::iter::once(PathElement::new(
                        part.0.iter().map(|c| (c.x, c.y)).collect::<Vec<_>>(),
                        style,
                    )))?;
                }
            }
        }

        let inside = |(x, y): &(f64, f64)| x_range.contains(x) && y_range.contains(y);
        for (k, descent) in self.paths.iter().enumerate() {
            let colour = path_colour(k, self.paths.len());
            let pieces = visible_pieces(
                descent.steps.iter().map(|s| (s.weights[0], s.weights[1])),
                inside,
            );
            let label = Self::descent_label(descent, "path");
            chart
                .draw_series(LineSeries::new(std::iter::empty(), colour.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            for piece in &pieces {
                let line = piece.iter().map(|&(_, p)| p);
                chart.draw_series(LineSeries::new(line, colour.stroke_width(2)))?;
                chart.draw_series(
                    piece
                        .iter()
                        .map(|&(_, p)| Circle::new(p, 3, colour.filled())),
                )?;
            }
        }
        let current = (land.current[0], land.current[1]);
        chart
            .draw_series(
                [current]
                    .into_iter()
                    .filter(inside)
                    .map(|p| Circle::new(p, 7, TANGENT.filled())),
            )?
            .label(format!(
                "current weights ({:.3}, {:.3}), loss {:.4}",
                current.0, current.1, land.current_loss
            ))
            .legend(|(x, y)| Circle::new((x + 10, y), 6, TANGENT.filled()));
        chart
            .configure_series_labels()
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;

        // The colour bar: positioned in log10(loss), like the colours, labelled in loss values.
        // Labels at both ends (the lowest and highest loss on the surface) and between.
        let marks: Vec<f64> = (0..=5).map(|k| lo + (hi - lo) * k as f64 / 5.0).collect();
        let mut scale = ChartBuilder::on(&bar)
            .margin_top(40)
            .margin_bottom(70)
            .margin_right(10)
            .y_label_area_size(70)
            .build_cartesian_2d(
                0.0..1.0,
                Marked {
                    range: lo..hi,
                    log: false,
                    marks,
                },
            )?;
        scale
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_desc("loss (mean squared error)")
            .y_label_formatter(&|v| loss_label(10f64.powf(*v)))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .draw()?;
        let bands = 100;
        scale.draw_series((0..bands).map(|k| {
            let a = lo + (hi - lo) * k as f64 / bands as f64;
            let b = lo + (hi - lo) * (k + 1) as f64 / bands as f64;
            Rectangle::new(
                [(0.0, a), (1.0, b)],
                ViridisRGB.get_color_normalized(a, lo, hi).filled(),
            )
        }))?;
        Ok(())
    }
}

/// The points of a descent inside the drawn range, each with its step number, in pieces of
/// consecutive steps: a path that leaves the range and comes back is not joined across the
/// steps it spent outside.
fn visible_pieces(
    points: impl Iterator<Item = (f64, f64)>,
    inside: impl Fn(&(f64, f64)) -> bool,
) -> Vec<Vec<(usize, (f64, f64))>> {
    let mut pieces: Vec<Vec<(usize, (f64, f64))>> = vec![Vec::new()];
    for (step, point) in points.enumerate() {
        if inside(&point) {
            pieces.last_mut().expect("never empty").push((step, point));
        } else if pieces.last().is_some_and(|p| !p.is_empty()) {
            pieces.push(Vec::new());
        }
    }
    pieces.retain(|p| !p.is_empty());
    pieces
}

/// Draws a landscape (one weight: the curve; two: the surface) into `path`.
/// `paths`: the descents to draw on it (none, one, or one per learning rate of a sweep).
pub fn landscape(
    path: &Path,
    land: &Landscape,
    paths: &[DescentPath],
    title: &str,
    size: (u32, u32),
) -> Result<()> {
    render(&LandscapeFigure { land, paths, title }, path, size)
}

#[cfg(test)]
mod tests {
    use super::visible_pieces;

    #[test]
    fn a_path_leaving_the_range_is_not_joined_across_the_gap() {
        let points = [(0.0, 1.0), (0.5, 2.0), (9.0, 3.0), (9.5, 4.0), (0.2, 5.0)];
        let pieces = visible_pieces(points.into_iter(), |p: &(f64, f64)| p.0 < 1.0);
        let steps: Vec<Vec<usize>> = pieces
            .iter()
            .map(|piece| piece.iter().map(|&(s, _)| s).collect())
            .collect();
        assert_eq!(steps, vec![vec![0, 1], vec![4]]);
        assert!(visible_pieces(points.into_iter(), |_: &(f64, f64)| false).is_empty());
    }
}

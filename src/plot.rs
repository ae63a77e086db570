//! Pictures of the descent (plotters): the loss against the step, the loss over one weight
//! with the tangent and the steps, the loss over two weights as a heatmap with contour lines.
//!
//! PNG or SVG by the file's extension, written atomically. PNG text is drawn with DejaVu Sans,
//! embedded in the binary (assets/), so PNGs come out the same on a machine with no fonts; an
//! SVG names the family `sans-serif` and its text is drawn by the viewer's fonts.

use std::ops::Range;
use std::path::Path;
use std::sync::Once;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::descent::StepRecord;
use crate::error::{Error, Result};
use crate::landscape::{AxisStep, Landscape};
use crate::output::write_atomically;

/// The font every picture's text is drawn with.
const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Picture size in pixels (SVG: user units).
pub const DEFAULT_SIZE: (u32, u32) = (900, 600);

const CURVE: RGBColor = RGBColor(31, 119, 180);
const TANGENT: RGBColor = RGBColor(214, 39, 40);
const STEPS: RGBColor = RGBColor(255, 127, 14);

/// The file kinds a picture can be written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Svg,
}

impl ImageKind {
    /// The kind `path`'s extension names; an error naming the choices otherwise.
    pub fn of(path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("png") => Ok(ImageKind::Png),
            Some("svg") => Ok(ImageKind::Svg),
            _ => Err(Error::InvalidArgument(format!(
                "{}: a picture is written as .png or .svg",
                path.display()
            ))),
        }
    }
}

/// A figure that can be drawn on any plotters backend.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES)
            .unwrap_or_else(|_| panic!("the embedded font is a valid TrueType font"));
    });
}

fn drawing_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(format!("drawing failed: {e}")),
    }
}

/// Draws `figure` into `path` (PNG or SVG by extension), atomically.
fn render(figure: &impl Figure, path: &Path, size: (u32, u32)) -> Result<()> {
    let bytes = encode(figure, path, size)?;
    write_atomically(path, |w| {
        use std::io::Write;
        w.write_all(&bytes).map_err(|e| Error::io(path, e))
    })
}

/// The encoded picture (PNG or SVG by `path`'s extension).
fn encode(figure: &impl Figure, path: &Path, size: (u32, u32)) -> Result<Vec<u8>> {
    register_font();
    match ImageKind::of(path)? {
        ImageKind::Svg => {
            let mut text = String::new();
            {
                let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
                figure.draw(&root).map_err(|e| drawing_error(path, e))?;
                root.present().map_err(|e| drawing_error(path, e))?;
            }
            Ok(text.into_bytes())
        }
        ImageKind::Png => {
            let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
                figure.draw(&root).map_err(|e| drawing_error(path, e))?;
                root.present().map_err(|e| drawing_error(path, e))?;
            }
            let mut out = Vec::new();
            {
                let mut encoder = png::Encoder::new(&mut out, size.0, size.1);
                encoder.set_color(png::ColorType::Rgb);
                encoder.set_depth(png::BitDepth::Eight);
                encoder.set_compression(png::Compression::Best);
                encoder.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
                let mut writer = encoder.write_header().map_err(|e| drawing_error(path, e))?;
                writer
                    .write_image_data(&rgb)
                    .map_err(|e| drawing_error(path, e))?;
                writer.finish().map_err(|e| drawing_error(path, e))?;
            }
            Ok(out)
        }
    }
}

/// Largest and smallest title font sizes: a long title shrinks, then wraps.
const TITLE_SIZES: (u32, u32) = (22, 15);

/// Draws `title` across the top of `root`, shrunk and then wrapped onto more lines until every
/// line fits the width; returns the area below it.
fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
) -> std::result::Result<DrawingArea<DB, Shift>, DrawingAreaErrorKind<DB::ErrorType>> {
    let width = root.dim_in_pixel().0.saturating_sub(20);
    let fits = |text: &str, size: u32| {
        root.estimate_text_size(text, &(FONT, size).into_font().into_text_style(root))
            .map(|(w, _)| w <= width)
            .unwrap_or(true)
    };
    let (mut size, mut lines) = (TITLE_SIZES.0, vec![title.to_string()]);
    while size > TITLE_SIZES.1 && !fits(title, size) {
        size -= 1;
    }
    if !fits(title, size) {
        // Greedy word wrap at the smallest size.
        lines.clear();
        let mut line = String::new();
        for word in title.split(' ') {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if fits(&candidate, size) || line.is_empty() {
                line = candidate;
            } else {
                lines.push(std::mem::replace(&mut line, word.to_string()));
            }
        }
        lines.push(line);
    }
    let style = (FONT, size)
        .into_font()
        .into_text_style(root)
        .pos(Pos::new(HPos::Center, VPos::Top));
    let line_height = size + size / 3;
    let centre = root.dim_in_pixel().0 as i32 / 2;
    for (i, line) in lines.iter().enumerate() {
        root.draw_text(line, &style, (centre, 12 + (i as u32 * line_height) as i32))?;
    }
    let height = 12 + lines.len() as u32 * line_height + 4;
    Ok(root.split_vertically(height).1)
}

/// An axis (linear or logarithmic) labelled at chosen values rather than at the round
/// numbers plotters would pick: every decade and the last value of a log-scale loss, both ends
/// of a colour bar.
struct Marked {
    range: Range<f64>,
    log: bool,
    marks: Vec<f64>,
}

impl Ranged for Marked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let scaled = |v: f64| {
            if self.log {
                v.max(f64::MIN_POSITIVE).ln()
            } else {
                v
            }
        };
        let (a, b) = (scaled(self.range.start), scaled(self.range.end));
        let t = if b > a {
            (scaled(*value) - a) / (b - a)
        } else {
            0.5
        };
        limit.0 + (t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, _hint: H) -> Vec<f64> {
        self.marks.clone()
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// A tick label: the shortest text for the value rounded to 6 significant digits, never
/// `-0`, scientific only for very large or small values.
pub fn tick(v: f64) -> String {
    if v.abs() < 1e-12 || !v.is_finite() {
        return if v.is_finite() {
            "0".into()
        } else {
            v.to_string()
        };
    }
    let rounded: f64 = format!("{v:.5e}").parse().unwrap_or(v);
    if (1e-4..1e6).contains(&rounded.abs()) {
        format!("{rounded}")
    } else {
        format!("{rounded:e}")
    }
}

/// A loss value as a label: three significant digits, plain where that is short.
pub fn loss_label(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let rounded: f64 = format!("{v:.2e}").parse().unwrap_or(v);
    if (1e-3..1e5).contains(&rounded.abs()) {
        format!("{rounded}")
    } else {
        format!("{rounded:.2e}")
    }
}

/// A range around `values` with a little room, never empty.
fn padded(lo: f64, hi: f64) -> Range<f64> {
    let span = if hi > lo { hi - lo } else { lo.abs().max(1.0) };
    (lo - 0.05 * span)..(hi + 0.05 * span)
}

fn finite_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}

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

/// A landscape: over one weight, the curve with the tangent at the current value and the
/// descent steps; over two, the surface (see [`LandscapeFigure::draw_surface`]).
struct LandscapeFigure<'a> {
    land: &'a Landscape,
    steps: &'a [AxisStep],
    title: &'a str,
    learning_rate: Option<f64>,
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
    /// The legend text of the descent series.
    fn descent_label(&self, what: &str) -> String {
        match self.learning_rate {
            Some(lr) => format!(
                "gradient descent {what} (learning rate {})",
                crate::error::number(lr)
            ),
            None => format!("gradient descent {what}"),
        }
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

        if !self.steps.is_empty() {
            let path: Vec<(f64, f64)> = self
                .steps
                .iter()
                .map(|s| (s.weights[0], s.loss))
                .filter(inside)
                .collect();
            let label = self.descent_label("steps");
            chart
                .draw_series(LineSeries::new(path.clone(), STEPS.stroke_width(1)))?
                .label(label)
                .legend(|(x, y)| Circle::new((x + 10, y), 5, STEPS.filled()));
            chart.draw_series(path.iter().map(|&p| Circle::new(p, 5, STEPS.filled())))?;
            // Numbers only where they do not crowd each other: a label at least 22 pixels
            // from every label drawn before it (the first and the last are always tried).
            let mut labelled: Vec<(i32, i32)> = Vec::new();
            let mut order: Vec<usize> = (0..path.len()).collect();
            if let Some(last) = order.pop() {
                order.insert(1.min(order.len()), last);
            }
            for i in order {
                let at = chart.backend_coord(&path[i]);
                let clear = labelled.iter().all(|q| {
                    let (dx, dy) = ((q.0 - at.0) as f64, (q.1 - at.1) as f64);
                    (dx * dx + dy * dy).sqrt() >= 22.0
                });
                if clear {
                    labelled.push(at);
                    chart.draw_series(std::iter::once(
                        EmptyElement::at(path[i]) + Text::new(i.to_string(), (6, -18), (FONT, 14)),
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
        if !self.steps.is_empty() {
            let path: Vec<(f64, f64)> = self
                .steps
                .iter()
                .map(|s| (s.weights[0], s.weights[1]))
                .filter(inside)
                .collect();
            let label = self.descent_label("path");
            chart
                .draw_series(LineSeries::new(path.clone(), STEPS.stroke_width(2)))?
                .label(label)
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], STEPS.stroke_width(2))
                });
            chart.draw_series(path.iter().map(|&p| Circle::new(p, 3, STEPS.filled())))?;
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

/// Draws a landscape (one weight: the curve; two: the surface) into `path`.
pub fn landscape(
    path: &Path,
    land: &Landscape,
    steps: &[AxisStep],
    learning_rate: Option<f64>,
    title: &str,
    size: (u32, u32),
) -> Result<()> {
    render(
        &LandscapeFigure {
            land,
            steps,
            title,
            learning_rate,
        },
        path,
        size,
    )
}

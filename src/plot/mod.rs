//! Pictures of the descent (plotters): the loss against the step, the loss over one weight
//! with the tangent and the steps, the loss over two weights as a heatmap with contour lines.
//!
//! PNG or SVG by the file's extension, written atomically. PNG text is drawn with DejaVu Sans,
//! embedded in the binary (assets/), so PNGs come out the same on a machine with no fonts; an
//! SVG names the family `sans-serif` and its text is drawn by the viewer's fonts.
//!
//! This module holds what every figure shares (file types, encoding, titles, labels, axes);
//! `loss_curve` and `landscape` each draw one kind of figure.

mod landscape;
mod loss_curve;

pub use landscape::{landscape, DescentPath};
pub use loss_curve::{loss_curve, loss_curve_bytes, loss_curves_bytes, Curve};

use std::ops::Range;
use std::path::Path;
use std::sync::Once;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};
use crate::output::write_atomically;

/// The font every picture's text is drawn with.
const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

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

//! `downhill landscape`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use downhill::data::Table;
use downhill::device::Target;
use downhill::error::{number, weight_text};
use downhill::landscape::{self, Landscape, WeightAxis};
use downhill::optimizer::UpdateRule;
use downhill::output::{check_distinct, check_writable, write_atomically};
use downhill::plot::{self, DescentPath, ImageKind};
use downhill::{model_file, Error, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::common::{parse_count, points as points_text, ModelDataArgs};
use super::train::OptimizerArgs;

/// Grid points per axis when --grid is not given.
const DEFAULT_GRID_1D: usize = 201;
const DEFAULT_GRID_2D: usize = 101;

const EXAMPLES: &str = "\
Examples:
  downhill generate --points 10000 --seed 1 --out points.csv
  downhill train --data points.csv --steps 3 --out start.json
  downhill landscape --model start.json --data points.csv --weight l1.n0.w0 --descend --lr 0.5 --steps 8 --out curve.png
  downhill landscape --model start.json --data points.csv --weight l1.n0.w0 --descend --lr 0.05,0.5,4 --steps 8 --out rates.png
  downhill landscape --model start.json --data points.csv --weight l0.n0.w0 --weight l0.n0.w1 --grid 41 --out surface.svg
  downhill landscape --model start.json --data points.csv --weight l0.n0.w0 --weight l0.n0.w1 --descend \
      --optimizer momentum --lr 0.05 --steps 40 --out momentum.png   # a momentum path on the surface
  downhill landscape --model start.json --data points.csv --weight l0.n1.b --grid 1001 --out curve.csv
  downhill landscape --model start.json --data points.csv --weight l0.n1.b --grid 11   # CSV on stdout";

#[derive(Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct LandscapeArgs {
    #[command(flatten)]
    common: ModelDataArgs,
    /// The weight to vary (a name as `eval` prints it, e.g. l0.n0.w1); give it twice for a
    /// surface over two weights.
    #[arg(long = "weight", value_name = "NAME", required = true, num_args = 1)]
    weights: Vec<String>,
    /// Lowest weight value (both axes); default: the current value minus max(1, |value|).
    #[arg(long, value_name = "A", allow_hyphen_values = true)]
    from: Option<f64>,
    /// Highest weight value (both axes); default: the current value plus max(1, |value|).
    #[arg(long, value_name = "B", allow_hyphen_values = true)]
    to: Option<f64>,
    /// Grid points per axis [default: 201 for one weight, 101 for two].
    #[arg(long, value_name = "G", value_parser = parse_count)]
    grid: Option<usize>,
    /// Also take gradient-descent steps on just these weights and draw them.
    #[arg(long)]
    descend: bool,
    /// Learning rate of --descend; a comma-separated list draws one path per rate (the
    /// lesson's step too small, right and too large, in one picture).
    #[arg(
        long,
        value_name = "F[,F...]",
        default_value = "0.1",
        value_delimiter = ',',
        allow_hyphen_values = true,
        requires = "descend"
    )]
    lr: Vec<f64>,
    /// Steps of --descend.
    #[arg(long, value_name = "K", default_value_t = 10, requires = "descend")]
    steps: usize,
    /// The update rule of --descend's steps (a momentum or Adam path over the surface).
    #[command(flatten)]
    optimizer: OptimizerArgs,
    /// Picture (.png, .svg) or grid values (.csv); without it, the CSV goes to stdout.
    #[arg(long, value_name = "FILE.png|FILE.svg|FILE.csv")]
    out: Option<PathBuf>,
    /// Picture width in pixels.
    #[arg(long, value_name = "PX", default_value_t = plot::DEFAULT_SIZE.0)]
    width: u32,
    /// Picture height in pixels.
    #[arg(long, value_name = "PX", default_value_t = plot::DEFAULT_SIZE.1)]
    height: u32,
}

/// What --out asks for.
enum Output {
    Picture(PathBuf),
    Csv(PathBuf),
    Stdout,
}

pub fn run(args: LandscapeArgs) -> Result<ExitCode> {
    if args.weights.len() > 2 {
        return Err(Error::InvalidArgument(
            "--weight: give one weight (a curve) or two (a surface)".into(),
        ));
    }
    if !(16..=10_000).contains(&args.width) || !(16..=10_000).contains(&args.height) {
        return Err(Error::InvalidArgument(
            "--width and --height must be between 16 and 10000 pixels".into(),
        ));
    }
    check_rates(&args.lr)?;
    let rule = args.optimizer.rule(args.steps, 1)?;
    if rule != UpdateRule::default() && !args.descend {
        return Err(Error::InvalidArgument(
            "--optimizer, --weight-decay and --lr-schedule shape --descend's steps: add --descend"
                .into(),
        ));
    }
    let output = match &args.out {
        None => Output::Stdout,
        Some(path) => {
            // A device or pipe without a picture's extension takes the CSV, as in `generate`.
            let is_csv = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
                || (downhill::output::is_stream(path) && ImageKind::of(path).is_err());
            if !is_csv {
                ImageKind::of(path)?;
            }
            check_writable(path)?;
            check_distinct(
                &[("--out", path)],
                &[
                    ("--data", &args.common.data),
                    ("--model", &args.common.model),
                ],
            )?;
            if is_csv {
                Output::Csv(path.clone())
            } else {
                Output::Picture(path.clone())
            }
        }
    };
    let common = &args.common;
    let net = model_file::load(&common.model)?;
    let grid = args.grid.unwrap_or(if args.weights.len() == 1 {
        DEFAULT_GRID_1D
    } else {
        DEFAULT_GRID_2D
    });
    let axes = args
        .weights
        .iter()
        .map(|name| WeightAxis::new(&net, name, args.from, args.to, grid))
        .collect::<Result<Vec<_>>>()?;
    let data =
        Table::load(&common.data)?.into_dataset(&common.data, net.inputs(), net.outputs())?;

    let total = landscape::grid_points(&axes)?;
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} grid point {pos}/{len} [{bar:30}] ({elapsed}, eta {eta})",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    let target = Target::resolve(common.device)?;
    let land = landscape::compute(&target, &net, &data, axes, &mut |done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    let paths = if args.descend {
        args.lr
            .iter()
            .map(|&learning_rate| {
                Ok(DescentPath {
                    learning_rate,
                    rule: (rule != UpdateRule::default()).then(|| rule.to_string()),
                    steps: landscape::descend(
                        &target,
                        &net,
                        &data,
                        &land.axes,
                        learning_rate,
                        &rule,
                        args.steps,
                    )?,
                })
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };

    let names: Vec<&str> = land.axes.iter().map(|a| a.name.as_str()).collect();
    let title = format!(
        "Loss over {}: {}, {}, {}",
        names.join(" and "),
        net.describe(),
        points_text(land.points),
        target.name()
    );
    let size = (args.width, args.height);
    match &output {
        Output::Picture(path) => plot::landscape(path, &land, &paths, &title, size)?,
        Output::Csv(path) => write_atomically(path, |w| write_csv(w, &land, path))?,
        Output::Stdout => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            match write_csv(&mut lock, &land, Path::new("<stdout>")) {
                // The reader closed the pipe (`| head`): end quietly, as SIGPIPE would.
                Err(Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::BrokenPipe =>
                {
                    std::process::exit(141)
                }
                other => other?,
            }
        }
    }
    // The summary is the result when the grid went to a file; with the CSV on stdout, it
    // goes to stderr so that stdout stays a clean CSV.
    let summary = summary(&land, &paths);
    if args.out.is_some() {
        print!("{summary}");
    } else {
        eprint!("{summary}");
    }
    if let Some(path) = &args.out {
        eprintln!("downhill: wrote the landscape to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Descent paths one picture takes: more would be a tangle.
const MAX_PATHS: usize = 16;

/// `--lr`'s list: each rate a positive number, none twice, at most `MAX_PATHS`.
fn check_rates(rates: &[f64]) -> Result<()> {
    if rates.len() > MAX_PATHS {
        return Err(Error::InvalidArgument(format!(
            "--lr: {} learning rates; one picture draws at most {MAX_PATHS} descent paths",
            rates.len()
        )));
    }
    for (i, &lr) in rates.iter().enumerate() {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::InvalidArgument(format!(
                "--lr {}: the learning rate must be a positive number",
                number(lr)
            )));
        }
        if rates[..i].contains(&lr) {
            return Err(Error::InvalidArgument(format!(
                "--lr {} is listed twice",
                number(lr)
            )));
        }
    }
    Ok(())
}

/// The grid as CSV: the weight value(s), then the loss.
fn write_csv(out: &mut impl Write, land: &Landscape, path: &Path) -> Result<()> {
    let io = |e| Error::io(path, e);
    let header: Vec<&str> = land.axes.iter().map(|a| a.name.as_str()).collect();
    writeln!(out, "{},loss", header.join(",")).map_err(io)?;
    let nx = land.axes[0].values.len();
    for (k, loss) in land.losses.iter().enumerate() {
        match &land.axes[..] {
            // `{:?}`: the shortest text that reads back as the value, in scientific notation
            // when very large or small (`{}` would write 1e-300 with 300 digits).
            [x] => writeln!(out, "{:?},{loss:?}", x.values[k]),
            [x, y] => writeln!(
                out,
                "{:?},{:?},{loss:?}",
                x.values[k % nx],
                y.values[k / nx]
            ),
            _ => unreachable!("one or two axes"),
        }
        .map_err(io)?;
    }
    Ok(())
}

/// A short summary: the lowest grid point, the current weights and their slope, the steps.
fn summary(land: &Landscape, paths: &[DescentPath]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let (best, best_loss) = land
        .losses
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_finite())
        .fold(
            (0, f64::INFINITY),
            |acc, (k, &l)| if l < acc.1 { (k, l) } else { acc },
        );
    let nx = land.axes[0].values.len();
    let at: Vec<String> = land
        .axes
        .iter()
        .enumerate()
        .map(|(a, axis)| {
            let index = if a == 0 { best % nx } else { best / nx };
            format!("{} = {}", axis.name, number(axis.values[index]))
        })
        .collect();
    let _ = writeln!(
        out,
        "{} grid points; lowest loss {best_loss:.6e} at {}",
        land.losses.len(),
        at.join(", ")
    );
    for (axis, (value, slope)) in land.axes.iter().zip(land.current.iter().zip(&land.slope)) {
        let _ = writeln!(
            out,
            "current {} = {}: loss {:.6e}, slope {slope:.6e}",
            axis.name,
            weight_text(*value),
            land.current_loss
        );
    }
    let names: Vec<&str> = land.axes.iter().map(|a| a.name.as_str()).collect();
    for path in paths {
        let _ = writeln!(
            out,
            "descent over {} (learning rate {}):",
            names.join(", "),
            number(path.learning_rate)
        );
        for (i, s) in path.steps.iter().enumerate() {
            let w: Vec<String> = s.weights.iter().map(|v| weight_text(*v)).collect();
            let _ = writeln!(
                out,
                "  step {i:>3}: weights ({}), loss {:.6e}",
                w.join(", "),
                s.loss
            );
        }
    }
    out
}

//! `downhill generate`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use downhill::output::check_writable;
use downhill::{data, model_file, network, Activation, Network, Result};

use super::common::{parse_count, points as points_text, ShapeArgs};

const EXAMPLES: &str = "\
Examples:
  downhill generate --points 10000 --noise 0.1 --seed 1 --out points.csv
  downhill generate --points 1e6 --layers 3,4,2 --out points.npy
  downhill generate --points 1000 --teacher model.json --noise 0 --out clean.csv";

#[derive(Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct GenerateArgs {
    /// Number of points (1e6 style accepted).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    points: usize,
    /// A random teacher of this shape (default: the lesson's 2-2-1 network).
    #[command(flatten)]
    shape: ShapeArgs,
    /// Use this model as the teacher.
    #[arg(long, value_name = "MODEL.json", conflicts_with_all = ["layers", "no_bias", "hidden_activation"])]
    teacher: Option<PathBuf>,
    /// Standard deviation of the gaussian noise added to the targets.
    #[arg(
        long,
        value_name = "F",
        default_value_t = 0.05,
        allow_hyphen_values = true
    )]
    noise: f64,
    /// Seed: the same seed gives the same points.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output file: .csv (with a header) or .npy (float32, rows x columns).
    #[arg(long, value_name = "FILE.csv|FILE.npy")]
    out: PathBuf,
}

pub fn run(args: GenerateArgs) -> Result<ExitCode> {
    check_writable(&args.out)?;
    let inputs: Vec<(&str, &std::path::Path)> = args
        .teacher
        .as_deref()
        .map(|p| ("--teacher", p))
        .into_iter()
        .collect();
    downhill::output::check_distinct(&[("--out", &args.out)], &inputs)?;
    let teacher = match (&args.teacher, &args.shape.layers) {
        (Some(path), _) => model_file::load(path)?,
        (None, Some(text)) => Network::random(
            &network::parse_widths(text)?,
            args.shape.activation(),
            !args.shape.no_bias,
            args.seed,
        )?,
        (None, None) => Network::lesson_baseline(Activation::Relu),
    };
    let points = data::generate(&teacher, args.points, args.noise, args.seed)?;
    points.save(&args.out)?;
    eprintln!(
        "downhill: wrote {} ({} inputs, {} targets) from teacher {} to {}",
        points_text(points.len()),
        points.inputs(),
        points.outputs(),
        teacher.describe(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

//! What every `train` run starts from, one run or a sweep: the initial weights and the
//! training data (a file, or a synthetic set from a teacher network).

use std::path::PathBuf;

use downhill::data::{generate, Table};
use downhill::device::Target;
use downhill::error::number;
use downhill::limits::check_memory;
use downhill::{model_file, network, Activation, Dataset, Error, Network, Result};

use super::args::TrainArgs;
use crate::cli::common::thousands;

/// Points in the default synthetic set.
pub const DEFAULT_POINTS: usize = 1_000_000;

/// Where the training data came from, for the report.
pub enum Source {
    File(PathBuf),
    Synthetic { teacher: String },
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::File(path) => path.display().to_string(),
            Source::Synthetic { teacher } => format!("synthetic, from {teacher}"),
        }
    }
}

/// The starting weights: `--init`'s, or random ones from `seed` for the shape asked for.
pub fn initial_network(args: &TrainArgs, seed: u64) -> Result<Network> {
    if let Some(path) = &args.init {
        return model_file::load(path);
    }
    let widths = match &args.shape.layers {
        Some(text) => network::parse_widths(text)?,
        None => vec![2, 2, 1],
    };
    Network::random(&widths, args.shape.activation(), !args.shape.no_bias, seed)
}

/// The training data and where it came from.
pub fn training_data(args: &TrainArgs, net: &Network) -> Result<(Dataset, Source)> {
    if let Some(path) = &args.data {
        let table = Table::load(path)?;
        let data = table
            .into_dataset(path, net.inputs(), net.outputs())
            .map_err(|e| match e {
                Error::BadData { path, message } if args.init.is_none() && args.shape.layers.is_none() => {
                    Error::BadData {
                        path,
                        message: format!("{message}; pass --layers to match the file (for example --layers 3,4,1)"),
                    }
                }
                other => other,
            })?;
        return Ok((data, Source::File(path.clone())));
    }
    let points = args.points.unwrap_or(DEFAULT_POINTS);
    let (teacher, name) = if net.widths() == [2, 2, 1] {
        (
            Network::lesson_baseline(Activation::Relu),
            "the lesson's 2-2-1 network (relu hidden)".to_string(),
        )
    } else {
        let widths = net.widths();
        let teacher = Network::random(&widths, args.shape.activation(), false, args.seed ^ 0x7eac)?;
        let name = format!("a random {}", teacher.describe());
        (teacher, name)
    };
    let data = generate(&teacher, points, args.noise, args.seed)?;
    let teacher = format!("{name}, noise {}, seed {}", number(args.noise), args.seed);
    Ok((data, Source::Synthetic { teacher }))
}

/// With `--verify` on the CPU, the f64 reference holds every layer for every point: refuse a
/// synthetic set it cannot hold before making the data.
pub fn check_reference_memory(args: &TrainArgs, net: &Network, target: &Target) -> Result<()> {
    if !args.verify || target.is_gpu() || args.data.is_some() {
        return Ok(());
    }
    let points = args.points.unwrap_or(DEFAULT_POINTS);
    check_memory(
        &format!(
            "--verify with the f64 reference kernel on {} points of {}",
            thousands(points),
            net.describe()
        ),
        downhill::cpu::reference::memory_needed(net, points),
    )
}

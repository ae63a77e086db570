//! What every `train` run starts from, one run or a sweep: the initial weights and the
//! training data (a file, or a synthetic set from a teacher network).

use std::path::PathBuf;

use downhill::batches::BatchPlan;
use downhill::data::{generate, Table};
use downhill::device::Target;
use downhill::error::number;
use downhill::limits::check_memory;
use downhill::{model_file, network, Activation, Dataset, Descent, Error, Network, Result};

use super::args::TrainArgs;
use super::processes::World;
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
    let (teacher, name) = teacher_of(args, net)?;
    let data = generate(&teacher, points, args.noise, args.seed)?;
    let teacher = format!("{name}, noise {}, seed {}", number(args.noise), args.seed);
    Ok((data, Source::Synthetic { teacher }))
}

/// The teacher of a synthetic set for `net` and its name: the lesson's network for 2-2-1, a
/// random one of `net`'s shape (seeded by `--seed`) otherwise.
fn teacher_of(args: &TrainArgs, net: &Network) -> Result<(Network, String)> {
    if net.widths() == [2, 2, 1] {
        return Ok((
            Network::lesson_baseline(Activation::Relu),
            "the lesson's 2-2-1 network (relu hidden)".to_string(),
        ));
    }
    let widths = net.widths();
    let teacher = Network::random(&widths, args.shape.activation(), false, args.seed ^ 0x7eac)?;
    let name = format!("a random {}", teacher.describe());
    Ok((teacher, name))
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

/// The training data, where it came from, and its points: alone, all of it; as one process
/// of a data-parallel run (`world`), this process's share and the points of every share.
pub fn training_set(
    args: &TrainArgs,
    net: &Network,
    world: Option<&World>,
) -> Result<(Dataset, Source, usize)> {
    #[cfg(feature = "mpi")]
    if let Some(world) = world {
        return training_share(args, net, world);
    }
    let _ = world;
    let (data, source) = training_data(args, net)?;
    let points = data.len();
    Ok((data, source, points))
}

/// This process's share of the training data of a data-parallel run, where it came from, and
/// the points of every share together: a file read at the share's offset (`.npy`) or read and
/// cut (CSV), or the share of the synthetic set made alone, bit for bit the single-process
/// set's rows.
#[cfg(feature = "mpi")]
fn training_share(
    args: &TrainArgs,
    net: &Network,
    world: &downhill::distributed::World,
) -> Result<(Dataset, Source, usize)> {
    // A bad row is found by the process whose share holds it: every process stops with its
    // message.
    world.agree((|| {
        if let Some(path) = &args.data {
            let (table, rows) = world.read_share(path)?;
            let data = table.into_dataset(path, net.inputs(), net.outputs())?;
            return Ok((data, Source::File(path.clone()), rows));
        }
        let points = args.points.unwrap_or(DEFAULT_POINTS);
        let share = world.share(points)?;
        let (teacher, name) = teacher_of(args, net)?;
        let data = downhill::data::generate_share(&teacher, points, args.noise, args.seed, share)?;
        let teacher = format!("{name}, noise {}, seed {}", number(args.noise), args.seed);
        Ok((data, Source::Synthetic { teacher }, points))
    })())
}

/// A run on the mini-batches of `plan`: its length in epochs becomes steps, an epoch is the
/// plan's batches, and the rate schedule counts epochs.
pub fn take_batches(args: &mut TrainArgs, descent: &mut Descent, plan: &BatchPlan) -> Result<()> {
    if let Some(epochs) = args.epochs {
        args.steps = epochs.saturating_mul(plan.per_epoch());
    }
    descent.max_steps = args.steps;
    descent.steps_per_epoch = plan.per_epoch();
    descent.update = args.optimizer.rule(args.steps, plan.per_epoch())?;
    Ok(())
}

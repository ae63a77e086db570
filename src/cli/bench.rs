//! `downhill bench`.

use std::process::ExitCode;

use clap::Args;
use downhill::bench::{self, BenchReport, BenchSettings};
use downhill::{network, DeviceChoice, Result};

use super::common::{parse_count, parse_device, print_json, thousands};

const EXAMPLES: &str = "\
Examples:
  downhill bench --points 1e5 --layers 2,2,1 --steps 5 --repeats 3
  downhill bench --points 1e6,1e7 --layers 2,2,1 --layers 8,64,64,1 --wide
  downhill bench --points 1e5 --device cpu --json";

#[derive(Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct BenchArgs {
    /// A workload's layer widths, inputs first; repeat the flag for several workloads
    /// [default: 2,2,1 and 8,64,64,1].
    #[arg(long, value_name = "W,W,...")]
    layers: Vec<String>,
    /// Dataset sizes, separated by commas (write 1e6 or 1_000_000, not 1,000,000).
    #[arg(long, value_name = "N,N,...", default_value = "1e5,1e6")]
    points: String,
    /// Steps per timed repetition (and in the warm-up).
    #[arg(long, value_name = "K", default_value_t = 5)]
    steps: usize,
    /// Timed repetitions per path and size (the table shows their median, min and max).
    #[arg(long, value_name = "R", default_value_t = 5)]
    repeats: usize,
    /// Learning rate of the timed descent.
    #[arg(
        long,
        value_name = "F",
        default_value_t = 0.01,
        allow_hyphen_values = true
    )]
    lr: f64,
    /// auto: every path this machine has; cpu: the CPU paths; gpu: the GPU path next to the
    /// fused CPU path.
    #[arg(long, value_name = "auto|cpu|gpu", default_value = "auto", value_parser = parse_device)]
    device: DeviceChoice,
    /// Skip the (slow) CPU reference path above this many points.
    #[arg(long, value_name = "N", default_value = "1e7", value_parser = parse_count)]
    reference_max_points: usize,
    /// Seed of the data and the starting weights.
    #[arg(long, default_value_t = 6)]
    seed: u64,
    /// Runs of the sweep row (that many runs stepped together from one pass over the data;
    /// its speedup is over stepping them one at a time); 0 leaves the row out.
    #[arg(long, value_name = "R", default_value_t = 8)]
    sweep: usize,
    /// Print the results as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Every column (min-max times, GB/s, GFLOP/s, the loss difference), about 170 characters
    /// wide; the default table fits 100.
    #[arg(long)]
    wide: bool,
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let mut settings = BenchSettings {
        steps: args.steps,
        repeats: args.repeats,
        learning_rate: args.lr,
        device: args.device,
        reference_max_points: args.reference_max_points,
        seed: args.seed,
        sweep_runs: args.sweep,
        ..BenchSettings::default()
    };
    if !args.layers.is_empty() {
        settings.workloads = args
            .layers
            .iter()
            .map(|text| network::parse_widths(text))
            .collect::<Result<_>>()?;
    }
    settings.points = args
        .points
        .split(',')
        .map(|text| {
            parse_count(text.trim())
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    downhill::Error::InvalidArgument(format!(
                        "--points: '{text}' is not a positive whole number (examples: 1e5,1e6)"
                    ))
                })
        })
        .collect::<Result<_>>()?;
    let report = bench::run(&settings, &mut |what| eprintln!("bench: {what}"))?;
    if args.json {
        print_json(&serde_json::to_value(&report).expect("the report serialises"));
    } else {
        print_table(&report, args.wide);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(report: &BenchReport, wide: bool) {
    let m = &report.machine;
    println!(
        "machine: {} CPU threads, read bandwidth {:.1} GB/s, f32 peak {:.0} GFLOP/s (measured now)",
        m.cpu_threads, m.cpu_read_gb_per_s, m.cpu_peak_gflop_per_s,
    );
    if let Some(name) = &m.gpu_adapter {
        match m.gpu_peak_gflop_per_s {
            Some(peak) => println!("GPU: {name}, f32 peak {peak:.0} GFLOP/s (measured now)"),
            None => println!("GPU: {name}"),
        }
    }
    println!(
        "each path: {} warm-up steps, then {} x {} timed steps from the same weights\n",
        report.steps, report.repeats, report.steps
    );
    // (header, cell, in the narrow table)
    type Column = (&'static str, fn(&downhill::bench::BenchRow) -> String, bool);
    let columns: [Column; 11] = [
        ("workload", |r| r.workload.clone(), true),
        ("path", |r| short_path(&r.path), true),
        ("points", |r| thousands(r.points), true),
        ("ms/step", |r| ms(r.ms_per_step_median), true),
        (
            "(min-max)",
            |r| format!("({}-{})", ms(r.ms_per_step_min), ms(r.ms_per_step_max)),
            false,
        ),
        (
            "Mpoints/s",
            |r| format!("{:.1}", r.points_per_s / 1e6),
            true,
        ),
        ("GB/s", |r| format!("{:.2}", r.gb_per_s), false),
        ("GFLOP/s", |r| format!("{:.1}", r.gflop_per_s), false),
        (
            "speed of light",
            |r| {
                format!(
                    "{:.0}% of {}",
                    r.share_of_floor * 100.0,
                    if r.bound == "memory" {
                        "bandwidth"
                    } else {
                        "f32 peak"
                    }
                )
            },
            true,
        ),
        (
            "vs fused",
            |r| format!("{:.2}x", r.speedup_vs_cpu_fused),
            true,
        ),
        (
            "loss diff",
            |r| format!("{:.1e}", r.loss_rel_diff_vs_cpu_fused),
            false,
        ),
    ];
    let shown: Vec<&Column> = columns.iter().filter(|c| wide || c.2).collect();
    let rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|r| shown.iter().map(|c| (c.1)(r)).collect())
        .collect();
    let widths: Vec<usize> = (0..shown.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([shown[c].0.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                if c < 2 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(shown.iter().map(|c| c.0).collect());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    let footnote = format!(
        "speed of light: the share of the fastest a step can be here: every point read once at \
         the measured bandwidth, or the step's arithmetic at the measured f32 peak, whichever \
         takes longer; the column names which (the GPU path: the same adapter's own bandwidth, \
         a read-only kernel over the same data, and its own f32 peak). 100% is the limit; the f64 reference is meant to be \
         slow.{}",
        if wide {
            " 'loss diff': relative difference of the final loss from the fused CPU path's."
        } else {
            " --wide shows every column (and the GPU adapter's full name)."
        }
    );
    println!();
    for line in wrap(&footnote, 100) {
        println!("{line}");
    }
    for note in &report.notes {
        for line in wrap(&format!("note: {note}"), 100) {
            println!("{line}");
        }
    }
}

/// A path's name for the narrow table: `gpu (llvmpipe)` for `gpu (llvmpipe (LLVM 15.0.6, 256
/// bits))`.
fn short_path(path: &str) -> String {
    // A sweep row's path ends in ", sweep of R" after the adapter's name.
    let (path, sweep) = match path.rfind(", sweep of ") {
        Some(at) => path.split_at(at),
        None => (path, ""),
    };
    match path.strip_prefix("gpu (") {
        Some(adapter) => {
            let name = adapter.split(" (").next().unwrap_or(adapter);
            format!("gpu ({}){sweep}", name.trim_end_matches(')'))
        }
        None => format!("{path}{sweep}"),
    }
}

/// `text` in lines of at most `width` characters, broken at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let line = lines.last_mut().expect("there is a line");
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

/// Milliseconds with three significant digits.
fn ms(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else if value >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

//! `downhill bench`.

use std::process::ExitCode;

use clap::Args;
use downhill::bench::{self, BenchReport, BenchSettings};
use downhill::{network, DeviceChoice, Result};

use super::{parse_count, parse_device, print_json, thousands};

#[derive(Args, Debug)]
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
    #[arg(long, value_name = "F", default_value_t = 0.01)]
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
    /// Print the results as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let mut settings = BenchSettings {
        steps: args.steps,
        repeats: args.repeats,
        learning_rate: args.lr,
        device: args.device,
        reference_max_points: args.reference_max_points,
        seed: args.seed,
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
        print_table(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(report: &BenchReport) {
    let m = &report.machine;
    println!(
        "machine: {} CPU threads, read bandwidth {:.1} GB/s, f32 peak {:.0} GFLOP/s (both \
         measured now){}",
        m.cpu_threads,
        m.cpu_read_gb_per_s,
        m.cpu_peak_gflop_per_s,
        m.gpu_adapter
            .as_ref()
            .map_or(String::new(), |name| format!("; GPU: {name}"))
    );
    println!(
        "each path: {} warm-up steps, then {} x {} timed steps from the same weights\n",
        report.steps, report.repeats, report.steps
    );
    let header = [
        "workload",
        "path",
        "points",
        "ms/step median (min-max)",
        "Mpoints/s",
        "GB/s",
        "GFLOP/s",
        "bound",
        "of floor",
        "vs fused",
        "loss diff",
    ];
    let rows: Vec<[String; 11]> = report
        .rows
        .iter()
        .map(|r| {
            [
                r.workload.clone(),
                r.path.clone(),
                thousands(r.points),
                format!(
                    "{} ({}-{})",
                    ms(r.ms_per_step_median),
                    ms(r.ms_per_step_min),
                    ms(r.ms_per_step_max)
                ),
                format!("{:.1}", r.points_per_s / 1e6),
                format!("{:.2}", r.gb_per_s),
                format!("{:.1}", r.gflop_per_s),
                r.bound.to_string(),
                format!("{:.0}%", r.share_of_floor * 100.0),
                format!("{:.2}x", r.speedup_vs_cpu_fused),
                format!("{:.1e}", r.loss_rel_diff_vs_cpu_fused),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].len()])
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
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    println!(
        "\nfloor: the least a step can take here: every point read once at the measured \
         bandwidth (the GPU path: the same adapter running a read-only kernel over the same \
         data), or the step's operations at the CPU's peak rate, whichever is longer; 'bound' \
         says which. 'loss diff': relative difference of the final loss from the fused CPU \
         path's."
    );
    for note in &report.notes {
        println!("note: {note}");
    }
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

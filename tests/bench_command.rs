//! `downhill bench` end to end, small: every CPU path appears with its timing, the floors the
//! command measured, and a final loss that agrees across paths. (No timing is asserted.)

// The command's tests run in the default build (the command with its GPU path).
#![cfg(all(feature = "cli", feature = "gpu"))]

mod common;

use common::downhill;

#[test]
fn bench_reports_every_path_against_the_measured_floors() {
    let out = downhill(&[
        "bench",
        "--points",
        "1000,5000",
        "--layers",
        "2,2,1",
        "--layers",
        "3,8,2",
        "--steps",
        "2",
        "--repeats",
        "2",
        "--device",
        "cpu",
        "--json",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let machine = &report["machine"];
    assert!(machine["cpu_read_gb_per_s"].as_f64().unwrap() > 0.0);
    assert!(machine["cpu_peak_gflop_per_s"].as_f64().unwrap() > 0.0);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        2 * 2 * 3,
        "two workloads x two sizes x two CPU paths and the sweep"
    );
    for row in rows {
        let path = row["path"].as_str().unwrap();
        let runs = row["runs"].as_u64().unwrap();
        match path {
            "cpu fused" | "cpu reference" => assert_eq!(runs, 1),
            // The sweep's runs start from the fused path's weights: its first run ends where
            // the fused path ends (exactly: the same block sums in the same order).
            "cpu fused, sweep of 8" => {
                assert_eq!(runs, 8);
                assert_eq!(
                    row["loss_rel_diff_vs_cpu_fused"].as_f64(),
                    Some(0.0),
                    "{row}"
                );
                let per_run = row["points_per_s"].as_f64().unwrap() / 8.0;
                let ms = row["ms_per_step_median"].as_f64().unwrap();
                let points = row["points"].as_f64().unwrap();
                assert!(
                    (per_run * ms / 1e3 - points).abs() <= 1e-6 * points,
                    "{row}"
                );
            }
            other => panic!("unexpected path {other}"),
        }
        let median = row["ms_per_step_median"].as_f64().unwrap();
        assert!(row["ms_per_step_min"].as_f64().unwrap() <= median);
        assert!(median <= row["ms_per_step_max"].as_f64().unwrap());
        assert!(row["floor_ms"].as_f64().unwrap() > 0.0);
        assert!(["memory", "arithmetic"].contains(&row["bound"].as_str().unwrap()));
        // The same steps from the same weights: the paths agree.
        assert!(
            row["loss_rel_diff_vs_cpu_fused"].as_f64().unwrap() < 1e-4,
            "{row}"
        );
    }

    // The table form says which bound applies and what the floor is.
    let text = downhill(&[
        "bench",
        "--points",
        "1000",
        "--layers",
        "2,2,1",
        "--steps",
        "1",
        "--repeats",
        "1",
        "--device",
        "cpu",
    ]);
    let table = String::from_utf8_lossy(&text.stdout);
    assert!(text.status.success());
    assert!(
        table.contains("cpu fused")
            && table.contains("speed of light")
            && table.contains("% of bandwidth"),
        "{table}"
    );

    let bad = downhill(&["bench", "--points", "1e5,zero"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("zero"));
}

/// The GPU row of `bench` and the read-only probe it is set against: the GPU path is timed,
/// its floor (the probe's time to read the same data) is measured and positive, and its final
/// loss agrees with the CPU path's.
#[test]
fn bench_times_the_gpu_path_against_its_read_only_probe() {
    if common::gpu().is_none() {
        return;
    }
    let out = downhill(&[
        "bench",
        "--points",
        "3000",
        "--layers",
        "2,2,1",
        "--steps",
        "2",
        "--repeats",
        "2",
        "--device",
        "gpu",
        "--json",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let gpu = rows
        .iter()
        .find(|r| r["path"].as_str().unwrap().starts_with("gpu"))
        .unwrap_or_else(|| panic!("no GPU row: {report}"));
    assert!(gpu["floor_ms"].as_f64().unwrap() > 0.0, "{gpu}");
    assert!(gpu["ms_per_step_median"].as_f64().unwrap() > 0.0, "{gpu}");
    assert_eq!(gpu["bound"], "memory");
    assert!(
        gpu["loss_rel_diff_vs_cpu_fused"].as_f64().unwrap() < 1e-4,
        "{gpu}"
    );
}

/// A wide network gets a GPU row (the layered kernels) measured against the adapter's own f32
/// peak, which the machine line reports.
#[test]
fn bench_times_a_wide_network_on_the_gpu_against_its_arithmetic_peak() {
    if common::gpu().is_none() {
        return;
    }
    let out = downhill(&[
        "bench",
        "--points",
        "2000",
        "--layers",
        "8,64,64,1",
        "--steps",
        "1",
        "--repeats",
        "1",
        "--device",
        "gpu",
        "--json",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["machine"]["gpu_peak_gflop_per_s"].as_f64().unwrap() > 0.0);
    let rows = report["rows"].as_array().unwrap();
    let gpu = rows
        .iter()
        .find(|r| r["path"].as_str().unwrap().starts_with("gpu"))
        .unwrap_or_else(|| panic!("no GPU row: {report}"));
    assert_eq!(gpu["bound"], "arithmetic", "{gpu}");
    assert!(gpu["share_of_floor"].as_f64().unwrap() > 0.0, "{gpu}");
    assert!(
        gpu["loss_rel_diff_vs_cpu_fused"].as_f64().unwrap() < 1e-4,
        "{gpu}"
    );
}

/// The read-only probe reads every value once: its result is the sum of the data (which the
/// kernel returns so that the reads cannot be optimised away), whatever the chunking.
#[test]
fn the_read_only_probe_reads_every_value() {
    let Some(ctx) = common::gpu() else { return };
    let (_, set) = common::random_case(&[2, 2, 1], downhill::Activation::Relu, true, 70_001, 4);
    let want: f64 = set.columns().iter().map(|&v| f64::from(v)).sum();
    for limit in [None, Some(10_000)] {
        let options = downhill::gpu::GpuOptions {
            max_chunk_points: limit,
            ..Default::default()
        };
        let probe = downhill::gpu::probe::ReadOnce::new(ctx.clone(), &set, options).unwrap();
        let got = probe.sum().unwrap();
        assert!(
            (got - want).abs()
                <= 1e-4
                    * set
                        .columns()
                        .iter()
                        .map(|v| f64::from(v.abs()))
                        .sum::<f64>(),
            "{got} vs {want}"
        );
        assert!(probe.time_pass(1).unwrap().as_nanos() > 0);
    }
}

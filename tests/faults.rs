//! Faults a long run meets: a full disk, numbers that blow up, degenerate data, GPU limits.
//! Each ends with the right exit code and a clear message, and on the GPU path exactly as on
//! the CPU path.

// The command's tests run in the default build (the command with its GPU path).
#![cfg(all(feature = "cli", feature = "gpu"))]

mod common;

use std::process::Command;

use common::downhill;

fn has_gpu() -> bool {
    common::gpu().is_some()
}

fn devices() -> Vec<&'static str> {
    if has_gpu() {
        vec!["cpu", "gpu"]
    } else {
        eprintln!("no GPU adapter: checking the CPU path only");
        vec!["cpu"]
    }
}

/// Trains on `rows` (CSV text without header) on every device; returns (device, exit code,
/// stderr, final loss from --json when it succeeded).
fn train_on_rows(rows: &str, extra: &[&str]) -> Vec<(String, Option<i32>, String, Option<f64>)> {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("points.csv");
    std::fs::write(&data, rows).unwrap();
    devices()
        .into_iter()
        .map(|device| {
            let mut args = vec![
                "train",
                "--data",
                data.to_str().unwrap(),
                "--device",
                device,
                "--json",
            ];
            args.extend_from_slice(extra);
            let out = downhill(&args);
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(!err.contains("panicked"), "{device}: {err}");
            let loss = serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .ok()
                .and_then(|v| v["final_loss"].as_f64());
            (device.to_string(), out.status.code(), err, loss)
        })
        .collect()
}

/// The part of a divergence message that must match across paths: "diverged at step N".
fn diverged_step(err: &str) -> Option<String> {
    let at = err.find("diverged at step ")?;
    Some(
        err[at..]
            .split([' ', ',', '('])
            .take(4)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

#[test]
fn a_learning_rate_of_a_million_diverges_the_same_way_on_each_path() {
    let rows: String = (0..200)
        .map(|i| {
            let x = (i as f64 / 100.0) - 1.0;
            format!("{x},{},{}\n", -x, 2.0 * x)
        })
        .collect();
    let runs = train_on_rows(&rows, &["--lr", "1e6", "--steps", "50"]);
    for (device, code, err, _) in &runs {
        assert_eq!(*code, Some(1), "{device}: {err}");
        assert!(err.contains("diverged"), "{device}: {err}");
    }
    let steps: Vec<_> = runs.iter().map(|r| diverged_step(&r.2)).collect();
    assert!(steps.windows(2).all(|w| w[0] == w[1]), "{steps:?}");
}

#[test]
fn inputs_of_1e30_overflow_into_a_clear_divergence_on_each_path() {
    let rows = "1e30,1,2\n-1e30,2,3\n5e29,0,1\n";
    let runs = train_on_rows(rows, &["--steps", "5"]);
    for (device, code, err, _) in &runs {
        assert_eq!(*code, Some(1), "{device}: {err}");
        assert!(err.contains("diverged at step 1"), "{device}: {err}");
    }
}

#[test]
fn all_identical_points_and_a_single_point_train_normally_on_each_path() {
    let identical = "0.5,-0.25,1.5\n".repeat(300);
    for rows in [identical.as_str(), "0.5,-0.25,1.5\n"] {
        let runs = train_on_rows(rows, &["--steps", "40", "--lr", "0.1"]);
        let losses: Vec<f64> = runs
            .iter()
            .map(|(device, code, err, loss)| {
                assert_eq!(*code, Some(0), "{device}: {err}");
                loss.expect("--json reports the final loss")
            })
            .collect();
        for l in &losses {
            assert!(l.is_finite());
            assert!(
                (l - losses[0]).abs() <= 1e-4 * losses[0].abs().max(1e-6),
                "{losses:?}"
            );
        }
    }
}

/// A network beyond the per-point kernels trains, predicts and draws its landscape on the GPU
/// (the layered kernels), with the CPU's predictions and losses.
#[test]
fn a_wide_network_trains_predicts_and_draws_its_landscape_on_the_gpu() {
    if !has_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (model, points) = (path("wide.json"), path("points.csv"));
    let out = downhill(&[
        "train",
        "--layers",
        "8,64,64,1",
        "--points",
        "500",
        "--steps",
        "3",
        "--device",
        "gpu",
        "--out",
        &model,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("device gpu"));
    let out = downhill(&[
        "generate", "--layers", "8,1", "--points", "50", "--out", &points,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let predict = |device: &str| {
        let out = downhill(&[
            "predict", "--model", &model, "--data", &points, "--device", device,
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .map(|l| l.parse::<f64>().unwrap())
            .collect::<Vec<f64>>()
    };
    let (on_gpu, on_cpu) = (predict("gpu"), predict("cpu"));
    assert_eq!(on_gpu.len(), 50);
    for (g, c) in on_gpu.iter().zip(&on_cpu) {
        assert!((g - c).abs() <= 1e-4 * (1.0 + c.abs()), "{g} vs {c}");
    }
    let landscape = |device: &str| {
        let csv = path(&format!("curve-{device}.csv"));
        let out = downhill(&[
            "landscape",
            "--model",
            &model,
            "--data",
            &points,
            "--weight",
            "l0.n0.w0",
            "--weight",
            "l1.n3.w5",
            "--grid",
            "3",
            "--device",
            device,
            "--out",
            &csv,
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(&csv)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.rsplit(',').next().unwrap().parse::<f64>().unwrap())
            .collect::<Vec<f64>>()
    };
    let (on_gpu, on_cpu) = (landscape("gpu"), landscape("cpu"));
    assert_eq!(on_gpu.len(), 9);
    for (g, c) in on_gpu.iter().zip(&on_cpu) {
        assert!((g - c).abs() <= 1e-4 * c.abs(), "{g} vs {c}");
    }
}

/// A full disk, simulated with a 64 KiB tmpfs (needs root, as in CI; skipped otherwise): the
/// write fails with a clear error naming the file, and the file that was there stays intact.
#[test]
fn a_full_disk_is_a_clear_error_and_keeps_the_previous_file() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("small");
    std::fs::create_dir(&mount).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mount)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        common::skipped("cannot mount a tmpfs here (not root?): the full-disk test needs it");
        return;
    }
    let target = mount.join("points.csv");
    std::fs::write(&target, "x0,x1,y0\n1,2,3\n").unwrap();
    let out = downhill(&[
        "generate",
        "--points",
        "100000",
        "--out",
        target.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let kept = std::fs::read_to_string(&target).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&mount)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let _ = Command::new("umount").arg(&mount).status();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("points.csv") && err.contains("No space left"),
        "{err}"
    );
    assert_eq!(kept, "x0,x1,y0\n1,2,3\n");
    assert_eq!(
        leftovers.len(),
        1,
        "no temporary file is left behind: {leftovers:?}"
    );
}

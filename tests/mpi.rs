//! Data-parallel training over MPI (the `mpi` feature): `mpirun -np 2` and `-np 3` (an
//! uneven split) give the loss history and the weights of one process within 1e-6, for a
//! `.npy` file in either memory order, a CSV file and a synthetic set, on the CPU and on the
//! GPU; a bad file ends every process with one message and exit code 2; what a run over
//! several processes does not take is refused.
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::Array2;
use ndarray_npy::WriteNpyExt;

/// `mpirun`, or `None` after saying the test is skipped (a failure under CI, where Open MPI
/// is installed).
fn mpirun() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("mpirun"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        common::skipped("mpirun not found (apt-get install openmpi-bin)");
    }
    found
}

/// Holds the machine for one test's jobs: MPI processes wait for each other by spinning, so
/// jobs of several tests at once on a small machine slow each other down past mpirun's 1 s
/// between its SIGTERM and its SIGKILL.
fn one_job_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static MACHINE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    MACHINE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `downhill args` in `np` processes under `mpirun`.
fn on_processes(mpirun: &Path, np: usize, args: &[&str]) -> Output {
    Command::new(mpirun)
        .args([
            "--allow-run-as-root",
            "--oversubscribe",
            "--bind-to",
            "none",
        ])
        .args(["-np", &np.to_string(), env!("CARGO_BIN_EXE_downhill")])
        .args(args)
        // Containers often forbid the cross-memory attach shared memory would use.
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .env_remove("RUST_LOG")
        .output()
        .expect("mpirun runs")
}

/// The JSON report of a run that must succeed.
fn report(out: &Output, what: &str) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        common::stderr(out),
        common::stdout(out)
    );
    serde_json::from_str(&common::stdout(out)).unwrap_or_else(|e| {
        panic!(
            "{what}: one JSON report expected ({e}):\n{}",
            common::stdout(out)
        )
    })
}

/// Every number of `got` within `tolerance` of `want`'s, relative.
fn assert_close(got: &[f64], want: &[f64], tolerance: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let gap = (g - w).abs() / w.abs().max(1e-6);
        assert!(gap <= tolerance, "{what}[{i}]: {g} vs {w} ({gap:e})");
    }
}

fn numbers(value: &serde_json::Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// A run's steps, loss history and weights (a report, or one run of a sweep's) as `want`'s,
/// within 1e-6.
fn assert_same_run(got: &serde_json::Value, want: &serde_json::Value, what: &str) {
    assert_eq!(got["steps"], want["steps"], "{what}");
    assert_close(
        &numbers(&got["loss_history"]),
        &numbers(&want["loss_history"]),
        1e-6,
        what,
    );
    assert_close(&weights(got), &weights(want), 1e-6, what);
}

/// Every weight of a report's model, flat.
fn weights(report: &serde_json::Value) -> Vec<f64> {
    let model = serde_json::to_string(&report["model"]).unwrap();
    downhill::model_file::parse(&model).unwrap().params()
}

#[test]
fn several_processes_give_one_processs_run() {
    let _alone = one_job_at_a_time();
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let fortran = dir.path().join("points.npy");
    let csv = dir.path().join("points.csv");
    let c_order = dir.path().join("c_order.npy");
    let made = common::downhill(&[
        "generate",
        "--points",
        "3001",
        "--layers",
        "2,3,1",
        "--seed",
        "5",
        "--out",
        common::path_str(&fortran),
    ]);
    assert!(made.status.success(), "{}", common::stderr(&made));
    let table = downhill::data::Table::load(&fortran).unwrap();
    let rows: Array2<f32> = table.columns.t().as_standard_layout().into_owned();
    rows.write_npy(std::fs::File::create(&c_order).unwrap())
        .unwrap();
    downhill::data::Table::load(&fortran)
        .unwrap()
        .into_dataset(&fortran, 2, 1)
        .unwrap()
        .save(&csv)
        .unwrap();
    let common_args = [
        "train", "--layers", "2,3,1", "--steps", "25", "--tol", "0", "--lr", "0.2", "--json",
    ];
    let sources: [Vec<&str>; 4] = [
        vec!["--data", common::path_str(&fortran)],
        vec!["--data", common::path_str(&c_order)],
        vec!["--data", common::path_str(&csv)],
        vec!["--points", "10007", "--seed", "3"],
    ];
    for (source, device) in sources
        .iter()
        .flat_map(|s| common::devices().into_iter().map(move |d| (s, d)))
    {
        let args: Vec<&str> = common_args
            .iter()
            .copied()
            .chain(source.clone())
            .chain(["--device", device])
            .collect();
        let alone = report(&common::downhill(&args), "one process");
        for np in [2, 3] {
            let what = format!("{source:?} on {np} processes, {device}");
            let spread = report(&on_processes(&mpirun, np, &args), &what);
            assert_eq!(spread["points"], alone["points"], "{what}");
            assert_same_run(&spread, &alone, &what);
        }
    }
}

/// A sweep (two rates and two seeds) over 2 and 3 processes: every run's loss history and
/// weights are the single process's, on the CPU (with Adam) and the GPU. (On the GPU with
/// plain descent: alone, the GPU updates in f32 on the device, while the processes update on
/// the host, and Adam's normalised first steps turn that rounding of near-zero slopes into
/// gaps of 1e-5.)
#[test]
fn a_sweep_over_processes_is_one_processs_sweep() {
    let _alone = one_job_at_a_time();
    let Some(mpirun) = mpirun() else { return };
    for device in common::devices() {
        let optimizer = if device == "cpu" { "adam" } else { "gd" };
        let args = [
            "train",
            "--layers",
            "2,4,1",
            "--points",
            "5003",
            "--steps",
            "20",
            "--tol",
            "0",
            "--lr",
            "0.01,0.05",
            "--init-seed",
            "1,2",
            "--optimizer",
            optimizer,
            "--json",
            "--device",
            device,
        ];
        let alone = report(&common::downhill(&args), "one process");
        for np in [2, 3] {
            let what = format!("sweep on {np} processes, {device}");
            let spread = report(&on_processes(&mpirun, np, &args), &what);
            assert_eq!(spread["points"], alone["points"], "{what}");
            let (runs, want) = (
                spread["runs"].as_array().unwrap(),
                alone["runs"].as_array().unwrap(),
            );
            assert_eq!(runs.len(), 4, "{what}");
            for (got, want) in runs.iter().zip(want) {
                let what = format!("{what}, run {}", got["learning_rate"]);
                assert_same_run(got, want, &what);
            }
        }
    }
}

/// `--verify` over 2 processes, a run and a sweep: each path runs over the processes, the
/// check passes, and the run is one process's.
#[test]
fn verify_over_processes_checks_one_processs_run() {
    let _alone = one_job_at_a_time();
    let Some(mpirun) = mpirun() else { return };
    for device in common::devices() {
        for lr in ["0.1", "0.05,0.1"] {
            let args = [
                "train", "--points", "3001", "--steps", "15", "--tol", "0", "--lr", lr, "--verify",
                "--json", "--device", device,
            ];
            let what = format!("--verify --lr {lr} on 2 processes, {device}");
            let alone = report(&common::downhill(&args), "one process");
            let spread = report(&on_processes(&mpirun, 2, &args), &what);
            let runs = |r: &serde_json::Value| match r["runs"].as_array() {
                Some(runs) => runs.clone(),
                None => vec![r.clone()],
            };
            for (got, want) in runs(&spread).iter().zip(runs(&alone)) {
                assert_eq!(got["verify"]["passed"], true, "{what}: {got}");
                assert_close(&weights(got), &weights(&want), 1e-6, &what);
            }
        }
    }
}

#[test]
fn a_bad_file_ends_every_process_with_exit_code_2() {
    let _alone = one_job_at_a_time();
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.npy");
    let mut rows = Array2::<f32>::ones((40, 3));
    // In the last process's share: the first process tells it.
    rows[[35, 1]] = f32::NAN;
    rows.write_npy(std::fs::File::create(&bad).unwrap())
        .unwrap();
    let out = on_processes(
        &mpirun,
        3,
        &[
            "train",
            "--data",
            common::path_str(&bad),
            "--steps",
            "3",
            "--device",
            "cpu",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    let message = common::stderr(&out);
    assert!(
        message.contains("bad.npy") && message.contains("row 36"),
        "{message}"
    );
    assert_eq!(
        message.matches("row 36").count(),
        1,
        "told once, by the first process: {message}"
    );
}

#[test]
fn what_several_processes_do_not_take_is_refused() {
    let _alone = one_job_at_a_time();
    let Some(mpirun) = mpirun() else { return };
    for extra in [&["--validation", "0.2"][..], &["--batch-size", "10"]] {
        let mut args = vec![
            "train", "--points", "100", "--steps", "2", "--device", "cpu",
        ];
        args.extend_from_slice(extra);
        let out = on_processes(&mpirun, 2, &args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{extra:?}: {}",
            common::stderr(&out)
        );
        assert!(common::stderr(&out).contains("processes"), "{extra:?}");
    }
}

/// The processes of a run started by `mpirun` with `marker` among their arguments.
fn processes_with(marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (text.contains("downhill") && text.contains(marker) && !text.contains("mpirun"))
                .then_some(pid)
        })
        .collect()
}

/// A run of 2 processes that would go on for ever, marked by `marker` (a seed no other test
/// uses), started with `extra` arguments and its stderr written to `stderr`; returned once
/// both processes are descending, with their pids. (200,000 points: a second of steps is a
/// history short enough to write well within mpirun's 1 s between its SIGTERM and SIGKILL.)
fn endless_job(
    mpirun: &Path,
    marker: &str,
    extra: &[&str],
    stderr: &Path,
) -> (std::process::Child, Vec<u32>) {
    let job = Command::new(mpirun)
        .args([
            "--allow-run-as-root",
            "--oversubscribe",
            "--bind-to",
            "none",
            "-np",
            "2",
        ])
        .arg(env!("CARGO_BIN_EXE_downhill"))
        .args([
            "train",
            "--points",
            "200000",
            "--steps",
            "100000000",
            "--tol",
            "0",
        ])
        .args(["--device", "cpu", "--seed", marker])
        .args(extra)
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .expect("mpirun starts");
    let started = std::time::Instant::now();
    let mut pids = Vec::new();
    while pids.len() < 2 && started.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(200));
        pids = processes_with(marker);
    }
    assert_eq!(pids.len(), 2, "both processes were started");
    std::thread::sleep(std::time::Duration::from_millis(1000));
    (job, pids)
}

/// Sends `signal` to `pid` with the shell's own kill (a minimal system may have no kill
/// program).
fn send(signal: &str, pid: u32) {
    let sent = Command::new("sh")
        .args(["-c", &format!("kill -{signal} {pid}")])
        .status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -{signal} {pid}");
}

/// How `job` ended, within 30 s, with no process of `marker`'s left behind.
fn ends_within_30_s(job: &mut std::process::Child, marker: &str) -> std::process::ExitStatus {
    let since = std::time::Instant::now();
    let status = loop {
        if let Some(status) = job.try_wait().expect("waiting works") {
            break status;
        }
        if since.elapsed() > std::time::Duration::from_secs(30) {
            let _ = job.kill();
            panic!("the job still runs 30 s after the signal");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        processes_with(marker).is_empty(),
        "no process is left behind"
    );
    status
}

#[test]
fn a_process_killed_mid_run_ends_the_job_with_an_error() {
    let _alone = one_job_at_a_time();
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let marker = "918273";
    let (mut job, pids) = endless_job(&mpirun, marker, &[], &dir.path().join("stderr"));
    send("9", pids[1]);
    let status = ends_within_30_s(&mut job, marker);
    assert!(!status.success(), "{status:?}");
}

/// Ctrl-C to `mpirun` (which passes it on to its processes as SIGTERM): every process stops
/// after the same step, the first writes the weights reached, says so once, and the job
/// ends.
#[test]
fn an_interrupt_through_mpirun_writes_the_weights_reached() {
    let _alone = one_job_at_a_time();
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (model, history, stderr) = (
        dir.path().join("model.json"),
        dir.path().join("history.csv"),
        dir.path().join("stderr"),
    );
    let marker = "918274";
    let outputs = [
        "--out",
        common::path_str(&model),
        "--history",
        common::path_str(&history),
    ];
    let (mut job, _) = endless_job(&mpirun, marker, &outputs, &stderr);
    send("INT", job.id());
    ends_within_30_s(&mut job, marker);
    let told = std::fs::read_to_string(&stderr).unwrap();
    assert_eq!(
        told.matches("stopping after the steps in flight").count(),
        1,
        "{told}"
    );
    assert_eq!(told.matches("interrupted after step").count(), 1, "{told}");
    let net = downhill::model_file::load(&model).expect("the weights reached were written");
    assert!(net.params().iter().all(|w| w.is_finite()));
    let rows = std::fs::read_to_string(&history).unwrap();
    // The last row is the state the run ended in, numbered one past the last update.
    let end: usize = rows
        .lines()
        .last()
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        told.contains(&format!("interrupted after step {};", end - 1)),
        "the history runs to the step told: it ends at {end}\n{told}"
    );
}

/// `eval` over 3 processes: the points, the loss and every slope of one process's.
#[test]
fn eval_over_processes_is_one_processs() {
    let _alone = one_job_at_a_time();
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (points, model) = common::points_and_model(dir.path());
    for device in common::devices() {
        let args = [
            "eval",
            "--model",
            common::path_str(&model),
            "--data",
            common::path_str(&points),
            "--json",
            "--device",
            device,
        ];
        let alone = report(&common::downhill(&args), "one process");
        let spread = report(&on_processes(&mpirun, 3, &args), "3 processes");
        assert_eq!(spread["points"], alone["points"]);
        for key in ["sse", "mse"] {
            assert_close(
                &[spread[key].as_f64().unwrap()],
                &[alone[key].as_f64().unwrap()],
                1e-6,
                key,
            );
        }
        let slopes = |r: &serde_json::Value| -> Vec<f64> {
            r["gradient"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_f64().unwrap())
                .collect()
        };
        assert_close(&slopes(&spread), &slopes(&alone), 1e-6, device);
    }
}

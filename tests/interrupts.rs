//! Interrupts lose nothing: a real SIGINT or SIGTERM sent to the real binary during `train`
//! stops it after the round in flight, with the weights and the history so far written and
//! the exit code a shell expects (130, 143); `--init` then resumes, appending to the history
//! with the step numbers continued.

// The command's tests run in the default build (the command with its GPU path).
#![cfg(all(feature = "cli", feature = "gpu"))]
#![cfg(unix)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn start_long_run(dir: &Path) -> Child {
    start_run(dir, "50000")
}

fn start_run(dir: &Path, points: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args([
            "train",
            "--points",
            points,
            "--steps",
            "100000000",
            "--tol",
            "0",
        ])
        .args(["--device", "cpu", "--out"])
        .arg(dir.join("model.json"))
        .arg("--history")
        .arg(dir.join("loss.csv"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts")
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// The step numbers of a history file; each row parses.
fn history_steps(path: &Path) -> Vec<usize> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("step,loss,gradient_norm"));
    lines
        .map(|l| {
            let fields: Vec<&str> = l.split(',').collect();
            assert_eq!(fields.len(), 3, "{l}");
            assert!(fields[1].parse::<f64>().unwrap().is_finite());
            fields[0].parse().unwrap()
        })
        .collect()
}

fn interrupted_run(signal_name: &str, code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let child = start_long_run(dir.path());
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, signal_name);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains("interrupted after step"), "{err}");
    assert!(
        err.contains("model.json") && err.contains("loss.csv"),
        "{err}"
    );
    let model = downhill::model_file::load(&dir.path().join("model.json")).unwrap();
    let steps = history_steps(&dir.path().join("loss.csv"));
    assert!(!steps.is_empty());
    assert_eq!(steps, (1..=steps.len()).collect::<Vec<_>>());

    // Resume: the history grows by the new steps, numbered on from the last one.
    let resumed = Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args([
            "train", "--points", "50000", "--steps", "7", "--tol", "0", "--device", "cpu",
        ])
        .arg("--init")
        .arg(dir.path().join("model.json"))
        .arg("--history")
        .arg(dir.path().join("loss.csv"))
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let after = history_steps(&dir.path().join("loss.csv"));
    assert_eq!(after.len(), steps.len() + 7);
    assert_eq!(after, (1..=after.len()).collect::<Vec<_>>());
    drop(model);
}

#[test]
fn sigint_writes_the_weights_and_history_and_exits_130() {
    interrupted_run("INT", 130);
}

#[test]
fn sigterm_writes_the_weights_and_history_and_exits_143() {
    interrupted_run("TERM", 143);
}

/// Two signals back to back: the second arrives while the first round of steps is still in
/// flight (5M points: each step takes milliseconds), so the process exits at once, before
/// anything is written, and says so; no output and no temporary file is left.
#[test]
fn a_second_sigint_exits_at_once_and_corrupts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let child = start_run(dir.path(), "5e6");
    // Wait until the data is made and the steps are running (the progress bar is off, so
    // look at the clock: generating 5M points takes well under the 3 s given).
    std::thread::sleep(Duration::from_millis(3000));
    signal(&child, "INT");
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("stopped"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "nothing may be left: {left:?}\n{err}");
}

#[test]
fn resuming_appends_to_an_existing_history_only_if_it_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("notes.csv");
    std::fs::write(&bogus, "hello\n").unwrap();
    let model = dir.path().join("m.json");
    let first = Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args([
            "train", "--points", "1000", "--steps", "2", "--device", "cpu", "--out",
        ])
        .arg(&model)
        .output()
        .unwrap();
    assert!(first.status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args([
            "train", "--points", "1000", "--steps", "2", "--device", "cpu", "--init",
        ])
        .arg(&model)
        .arg("--history")
        .arg(&bogus)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("notes.csv") && err.contains("step,loss,gradient_norm"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&bogus).unwrap(), "hello\n");
}

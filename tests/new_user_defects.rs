//! Every defect found when downhill was tried as a new user would (about 330 hostile commands):
//! each test here failed before its fix. They run the real binary, as a user would.

// The command's tests run in the default build (the command with its GPU path).
#![cfg(all(feature = "cli", feature = "gpu"))]
#![cfg(unix)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{downhill, downhill_within, path_str, points_and_model, stderr, stdout};

fn s(p: &Path) -> &str {
    path_str(p)
}

fn within(limit: Duration, args: &[&str]) -> Output {
    downhill_within(limit, args)
}

/// Exit code 2, no panic, and every needle in the message.
fn refused(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "missing '{needle}' in: {err}");
    }
}

fn model_with_weight(dir: &Path, weight: &str) -> PathBuf {
    let path = dir.join(format!("w{weight}.json"));
    std::fs::write(
        &path,
        format!(
            r#"{{"format":"downhill-model","version":1,"layers":[{{"activation":"identity","weights":[[1,{weight}]],"bias":null}}]}}"#
        ),
    )
    .unwrap();
    path
}

// 1. Sizes that overflow.
#[test]
fn widths_and_grids_past_every_limit_exit_2_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = points_and_model(dir.path());
    refused(
        &downhill(&[
            "train",
            "--layers",
            "2,18446744073709551615,1",
            "--points",
            "10",
        ]),
        &["at most 4294967295 nodes"],
    );
    refused(
        &downhill(&[
            "landscape",
            "--model",
            s(&model),
            "--data",
            s(&data),
            "--weight",
            "l0.n0.w0",
            "--grid",
            "18446744073709551615",
        ]),
        &["--grid", "more memory than can be counted"],
    );
}

// 2. Sizes checked against the memory the machine has, before allocating.
#[test]
fn requests_larger_than_memory_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = points_and_model(dir.path());
    let quick = Duration::from_secs(20);
    let land = |extra: &[&str]| {
        let mut args = vec![
            "landscape",
            "--model",
            s(&model),
            "--data",
            s(&data),
            "--weight",
            "l0.n0.w0",
        ];
        args.extend_from_slice(extra);
        within(quick, &args)
    };
    for out in [
        within(quick, &["train", "--points", "1e12"]),
        within(quick, &["bench", "--points", "1e12", "--layers", "2,2,1"]),
        within(
            quick,
            &["train", "--layers", "2,100000,100000,1", "--points", "10"],
        ),
        within(
            quick,
            &[
                "generate",
                "--points",
                "1e12",
                "--out",
                s(&dir.path().join("g.npy")),
            ],
        ),
        land(&["--grid", "1e12"]),
        land(&["--weight", "l0.n0.w1", "--grid", "1e7"]),
    ] {
        refused(&out, &["too large", "needs", "available"]);
    }
    assert!(!dir.path().join("g.npy").exists());
}

// 3 and 4. Landscapes whose losses are all non-finite, and ranges whose width overflows.
#[test]
fn landscapes_over_overflowing_weights_finish_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = points_and_model(dir.path());
    let limit = Duration::from_secs(60);
    let base = ["landscape", "--model", s(&model), "--data", s(&data)];
    let surface = dir.path().join("s.png");
    let mut args = base.to_vec();
    args.extend([
        "--weight",
        "l0.n0.w0",
        "--weight",
        "l0.n0.w1",
        "--from",
        "1e20",
        "--to",
        "1e21",
        "--grid",
        "5",
        "--out",
        s(&surface),
    ]);
    refused(
        &within(limit, &args),
        &["not a finite number anywhere on this grid"],
    );
    assert!(!surface.exists());

    let curve = dir.path().join("c.png");
    let mut args = base.to_vec();
    args.extend([
        "--weight",
        "l0.n0.w0",
        "--from=-1e308",
        "--to",
        "1e308",
        "--out",
        s(&curve),
    ]);
    refused(&within(limit, &args), &["finite width", "-1e308"]);
    let mut args = base.to_vec();
    args.extend([
        "--weight",
        "l0.n0.w0",
        "--from",
        "1e20",
        "--to",
        "1e21",
        "--out",
        s(&curve),
    ]);
    refused(&within(limit, &args), &["not a finite number anywhere"]);
    assert!(!curve.exists());

    // Some losses finite, some not: the picture is drawn, and the command ends.
    let mut args = base.to_vec();
    args.extend([
        "--weight", "l0.n0.w0", "--from", "1e17", "--to", "1e21", "--grid", "50",
    ]);
    args.extend(["--out", s(&curve)]);
    let out = within(limit, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

// 5. Numbers finite in f64 but not in f32.
#[test]
fn values_beyond_single_precision_are_refused_where_they_enter() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("p.csv");
    std::fs::write(&data, "x0,x1,y\n1,2,3\n").unwrap();
    for weight in ["1e39", "1e300"] {
        let model = model_with_weight(dir.path(), weight);
        refused(
            &downhill(&["eval", "--model", s(&model), "--data", s(&data)]),
            &["layer 0, node 0, input 1", "single-precision"],
        );
        refused(
            &downhill(&[
                "train",
                "--init",
                s(&model),
                "--data",
                s(&data),
                "--steps",
                "1",
            ]),
            &["layer 0, node 0, input 1"],
        );
    }
    let out_file = dir.path().join("g.csv");
    refused(
        &downhill(&[
            "generate",
            "--points",
            "10",
            "--noise",
            "1e300",
            "--out",
            s(&out_file),
        ]),
        &["too large for single", "--noise"],
    );
    // Weights that fit single precision, outputs (about 1e60) that do not.
    let teacher = dir.path().join("teacher.json");
    std::fs::write(
        &teacher,
        r#"{"format":"downhill-model","version":1,"layers":[
            {"activation":"identity","weights":[[1e30,1e30]],"bias":null},
            {"activation":"identity","weights":[[1e30]],"bias":null}]}"#,
    )
    .unwrap();
    refused(
        &downhill(&[
            "generate",
            "--points",
            "100",
            "--teacher",
            s(&teacher),
            "--noise",
            "0",
            "--out",
            s(&out_file),
        ]),
        &["too large for single"],
    );
    assert!(!out_file.exists());
}

// 6. Devices and FIFOs are written into; other special files are refused.
#[test]
fn outputs_to_devices_and_fifos_are_written_into_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let out = downhill(&[
        "train",
        "--points",
        "100",
        "--steps",
        "2",
        "--out",
        "/dev/null",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());

    let fifo = dir.path().join("model.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let out = downhill(&[
        "train",
        "--points",
        "100",
        "--steps",
        "2",
        "--out",
        s(&fifo),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = reader.join().unwrap();
    assert!(downhill::model_file::parse(&text).is_ok(), "{text}");
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());

    let socket_path = dir.path().join("s.sock");
    let _socket = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
    refused(
        &downhill(&[
            "train",
            "--points",
            "100",
            "--steps",
            "2",
            "--out",
            s(&socket_path),
        ]),
        &["s.sock", "neither a regular file"],
    );
}

// 7. An interrupted writer removes its temporary file and says so.
#[test]
fn ctrl_c_while_writing_removes_the_temporary_file_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("big.npy");
    let child = Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args(["generate", "--points", "3e7", "--out", s(&target)])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let temp_exists = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp"))
    };
    let start = Instant::now();
    while !temp_exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no temporary file appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("big.npy not written"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

// 8. Two outputs on one path, or an output on an input.
#[test]
fn two_outputs_on_one_path_or_an_output_on_the_input_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = points_and_model(dir.path());
    let before = std::fs::read(&data).unwrap();
    let x = dir.path().join("x.json");
    let dotted = format!("{}/./x.json", s(dir.path()));
    refused(
        &downhill(&[
            "train",
            "--points",
            "100",
            "--out",
            s(&x),
            "--history",
            &dotted,
        ]),
        &["--out and --history name the same file"],
    );
    let png = dir.path().join("s.png");
    refused(
        &downhill(&[
            "train",
            "--points",
            "100",
            "--out",
            s(&png),
            "--plot",
            s(&png),
        ]),
        &["--out and --plot"],
    );
    refused(
        &downhill(&["train", "--data", s(&data), "--out", s(&data)]),
        &["is the --data file"],
    );
    refused(
        &downhill(&[
            "predict",
            "--model",
            s(&model),
            "--data",
            s(&data),
            "--out",
            s(&data),
        ]),
        &["is the --data file"],
    );
    assert_eq!(std::fs::read(&data).unwrap(), before, "the input is intact");
    assert!(!x.exists() && !png.exists());
}

// 9. Paths that only fail at the end are refused at the start, and nothing is replaced.
#[test]
fn outputs_that_cannot_be_written_are_refused_before_training_and_replace_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.json");
    std::fs::write(&model, "previous").unwrap();
    let newdir = format!("{}/newdir/", s(dir.path()));
    let hdir = format!("{}/hdir/", s(dir.path()));
    let pdir = format!("{}/pdir.png/", s(dir.path()));
    for (flag, path) in [("--out", &newdir), ("--history", &hdir), ("--plot", &pdir)] {
        let mut args = vec!["train", "--points", "100", "--steps", "2", flag, path];
        if flag != "--out" {
            args.extend(["--out", s(&model)]);
        }
        let out = downhill(&args);
        refused(&out, &["ends in '/'"]);
        assert!(!stdout(&out).contains("final mse"), "it trained first");
    }
    assert_eq!(std::fs::read_to_string(&model).unwrap(), "previous");
}

// 11. Old-Mac line endings.
#[test]
fn old_mac_line_endings_are_read_with_their_true_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "x0,x1,y\r1,2,3\r4,5,6\r7,oops,9\r").unwrap();
    let out = downhill(&["train", "--data", s(&bad), "--steps", "1"]);
    refused(&out, &["line 4", "column 2", "oops"]);

    // 200,000 rows, 2.6 MB in all, no '\n' anywhere: it loads.
    let big = dir.path().join("big.csv");
    let mut text = String::from("x0,x1,y\r");
    for i in 0..200_000 {
        let v = (i % 100) as f32 / 100.0;
        text.push_str(&format!("{v},{},{}\r", 1.0 - v, v * 2.0));
    }
    std::fs::write(&big, text).unwrap();
    let out = downhill(&["train", "--data", s(&big), "--steps", "1", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["points"], 200_000);
}

// 12. A .npy file through a FIFO.
#[test]
fn npy_data_through_a_fifo_is_read_as_a_stream() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.npy");
    let out = downhill(&["generate", "--points", "3000", "--out", s(&file)]);
    assert!(out.status.success());
    let bytes = std::fs::read(&file).unwrap();
    let fifo = dir.path().join("fifo.npy");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
            let _ = f.write_all(&bytes);
        })
    };
    let out = downhill(&["train", "--data", s(&fifo), "--steps", "2", "--json"]);
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["points"], 3000);
}

// 13. Model files of unbounded size.
#[test]
fn a_model_path_of_dev_zero_or_a_huge_file_is_refused_at_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("p.csv");
    std::fs::write(&data, "x0,x1,y\n1,2,3\n").unwrap();
    let limit = Duration::from_secs(30);
    refused(
        &within(limit, &["eval", "--model", "/dev/zero", "--data", s(&data)]),
        &["/dev/zero", "larger than 256 MB"],
    );
    let huge = dir.path().join("huge.json");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    refused(
        &within(limit, &["eval", "--model", s(&huge), "--data", s(&data)]),
        &["larger than 256 MB"],
    );
}

// 14. Messages.
#[test]
fn messages_are_short_escaped_and_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = points_and_model(dir.path());

    // Huge numbers in scientific form, not hundreds of digits.
    let out = downhill(&[
        "landscape",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--weight",
        "l0.n0.w0",
        "--from",
        "1e300",
        "--to",
        "1e299",
    ]);
    refused(&out, &["--from 1e300 --to 1e299"]);
    assert!(stderr(&out).len() < 400, "{}", stderr(&out));

    // bench validates its learning rate as train does, with no debug text.
    for lr in ["nan", "0", "-1"] {
        let out = downhill(&["bench", "--points", "100", "--layers", "2,2,1", "--lr", lr]);
        refused(&out, &["learning rate must be a finite number > 0"]);
        assert!(!stderr(&out).contains("Diverged {"), "{}", stderr(&out));
    }

    // A .npy cut off inside its header.
    let npy = dir.path().join("cut.npy");
    std::fs::write(&npy, b"\x93NUMPY\x01\x00\x76\x00{'descr': '<f4'").unwrap();
    refused(
        &downhill(&["train", "--data", s(&npy)]),
        &["cut off inside its .npy header"],
    );
    // '=f4' is native float32 and reads.
    let native = dir.path().join("native.npy");
    let mut header = "{'descr': '=f4', 'fortran_order': False, 'shape': (2, 3), }".to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in [1f32, 2.0, 3.0, 4.0, 5.0, 6.0] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(&native, &bytes).unwrap();
    let out = downhill(&["train", "--data", s(&native), "--steps", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A header syntax error is one line.
    let broken = dir.path().join("broken.npy");
    let mut broken_bytes = bytes.clone();
    let at = broken_bytes.iter().position(|&b| b == b'{').unwrap();
    broken_bytes[at] = b'[';
    std::fs::write(&broken, &broken_bytes).unwrap();
    let out = downhill(&["train", "--data", s(&broken)]);
    refused(&out, &["broken.npy"]);
    assert_eq!(
        stderr(&out).trim_end().lines().count(),
        1,
        "{}",
        stderr(&out)
    );

    // Control bytes in a bad cell are escaped.
    let ctl = dir.path().join("ctl.csv");
    std::fs::write(&ctl, "x0,x1,y\n1,\x1b[31mred,3\n").unwrap();
    let out = downhill(&["train", "--data", s(&ctl)]);
    refused(&out, &["\\u{1b}[31mred"]);
    assert!(!stderr(&out).contains('\x1b'));

    // A model file starting with a byte-order mark loads, as a CSV does.
    let bom = dir.path().join("bom.json");
    let mut text = "\u{feff}".to_string();
    text.push_str(&std::fs::read_to_string(&model).unwrap());
    std::fs::write(&bom, text).unwrap();
    let out = downhill(&["eval", "--model", s(&bom), "--data", s(&data)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // --init with shape options: refused, not silently ignored.
    for extra in [["--hidden-activation", "identity"], ["--layers", "2,3,1"]] {
        let mut args = vec!["train", "--init", s(&model), "--data", s(&data)];
        args.extend(extra);
        refused(&downhill(&args), &["cannot be used with"]);
    }

    // A count too large is called too large.
    refused(&downhill(&["train", "--points", "1e30"]), &["too large"]);
}

// 22. No "error:" lines from the Wayland probe of Mesa's Vulkan driver.
#[test]
fn gpu_aware_commands_print_no_xdg_runtime_dir_noise() {
    // Unset, empty, or a display name that needs the runtime directory: all quiet.
    for (runtime, display) in [(None, None), (Some(""), None), (None, Some("wayland-0"))] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_downhill"));
        command
            .arg("info")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("WAYLAND_DISPLAY");
        if let Some(r) = runtime {
            command.env("XDG_RUNTIME_DIR", r);
        }
        if let Some(d) = display {
            command.env("WAYLAND_DISPLAY", d);
        }
        let out = command.output().unwrap();
        assert!(out.status.success());
        let err = stderr(&out);
        assert!(
            !err.contains("XDG_RUNTIME_DIR"),
            "{runtime:?} {display:?}: {err}"
        );
        assert!(!err.contains("error"), "{err}");
    }
}

// 23. The lesson's examples live in the repository, and the README says how to install.
#[test]
fn the_lesson_is_cited_from_the_repository_and_the_readme_installs_the_command() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lesson = std::fs::read_to_string(root.join("docs/LESSON.md")).unwrap();
    for example in ["### A.", "### B.", "### C.", "### D.", "2.24", "[0.7, 1.6]"] {
        assert!(lesson.contains(example), "docs/LESSON.md lacks {example}");
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.contains("cargo install --path ."));
    let outside = ["SEED", ".md"].concat();
    for dir in ["src", "tests", "docs", "benches", "scripts"] {
        for entry in walk(&root.join(dir)) {
            let text = std::fs::read_to_string(&entry).unwrap_or_default();
            assert!(
                !text.contains(&outside),
                "{} cites a file outside the repository",
                entry.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

// A second trial, after the fixes above, found these; each test failed before its fix.

#[test]
fn a_closed_or_full_stdout_ends_quietly_not_with_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = points_and_model(dir.path());
    // Predictions for 2,000 points are more than a pipe holds: the writer meets the closed end.
    let mut child = Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args(["predict", "--model", s(&model), "--data", s(&data)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        matches!(out.status.code(), Some(0 | 141)),
        "{:?} {err}",
        out.status
    );

    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args(["eval", "--model", s(&model), "--data", s(&data)])
        .stdout(Stdio::from(full))
        .output()
        .unwrap();
    refused(
        &out,
        &["writing the result to stdout failed", "No space left"],
    );
}

#[test]
fn verify_passes_when_the_loss_goes_to_zero() {
    for args in [
        &["--points", "1"][..],
        &[
            "--points", "1000", "--noise", "0", "--steps", "400", "--tol", "0",
        ],
    ] {
        let mut all = vec!["train", "--device", "cpu", "--verify", "--json"];
        all.extend_from_slice(args);
        let out = downhill(&all);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["verify"]["passed"], true, "{report}");
    }
}

#[test]
fn csv_line_numbers_count_blank_lines() {
    let dir = tempfile::tempdir().unwrap();
    for (text, line) in [
        ("x0,x1,y\n1,2,3\n\n\n\n7,x,9\n", "line 6"),
        ("1,2,3\r\r7,x,9", "line 3"),
        ("\n\n1,2,3\r\n\r\n7,x,9\r\n", "line 5"),
    ] {
        let path = dir.path().join("blank.csv");
        std::fs::write(&path, text).unwrap();
        refused(
            &downhill(&["train", "--data", s(&path), "--steps", "1"]),
            &[line, "column 2"],
        );
    }
}

#[test]
fn extreme_numbers_print_in_scientific_form() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = points_and_model(dir.path());
    let huge = dir.path().join("huge.json");
    std::fs::write(
        &huge,
        r#"{"format":"downhill-model","version":1,"layers":[
            {"activation":"relu","weights":[[1e30,1e-30],[1,1]],"bias":null},
            {"activation":"identity","weights":[[1,1]],"bias":null}]}"#,
    )
    .unwrap();
    let out = downhill(&[
        "train",
        "--init",
        s(&huge),
        "--data",
        s(&data),
        "--steps",
        "0",
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("1.000000e30") && text.contains("1.000000e-30"),
        "{text}"
    );
    let out = downhill(&[
        "landscape",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--weight",
        "l0.n0.w0",
        "--from",
        "1e-300",
        "--to",
        "2e-300",
        "--grid",
        "3",
    ]);
    let csv = stdout(&out);
    assert!(csv.lines().nth(1).unwrap().starts_with("1e-300,"), "{csv}");
    assert!(csv.lines().all(|l| l.len() < 80), "{csv}");
}

#[test]
fn a_diverged_run_keeps_a_consistent_history() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("h.csv");
    let out = downhill(&[
        "train",
        "--points",
        "1000",
        "--lr",
        "50",
        "--steps",
        "20",
        "--history",
        s(&history),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let csv = std::fs::read_to_string(&history).unwrap();
    let rows: Vec<(usize, f64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap())
        })
        .collect();
    // One row per kept update, then the final state: numbered 1.., the last the final loss,
    // and no state twice.
    assert_eq!(
        rows.len(),
        report["steps"].as_u64().unwrap() as usize + 1,
        "{csv}"
    );
    let steps: Vec<usize> = rows.iter().map(|r| r.0).collect();
    assert_eq!(steps, (1..=rows.len()).collect::<Vec<_>>());
    let final_loss = report["final_loss"].as_f64().unwrap();
    assert!((rows[rows.len() - 1].1 - final_loss).abs() <= 1e-9 * final_loss);
    if rows.len() >= 2 {
        assert_ne!(rows[rows.len() - 2].1, rows[rows.len() - 1].1, "{csv}");
    }
}

#[test]
fn one_fifo_takes_one_output_and_devices_take_any_format() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("ff");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    refused(
        &downhill(&[
            "train",
            "--points",
            "100",
            "--out",
            s(&fifo),
            "--history",
            s(&fifo),
        ]),
        &["name the same file"],
    );
    let out = downhill(&["generate", "--points", "100", "--out", "/dev/null"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

// A third trial found these.

#[test]
fn verify_passes_honest_runs_that_wander_and_catches_a_wrong_update() {
    // Oscillating and converging runs, where f32 and f64 trajectories drift apart (each
    // round is checked from common weights).
    for args in [
        &["--points", "1000"][..],
        &["--seed", "7", "--points", "3000", "--steps", "400"],
    ] {
        let mut all = vec!["train", "--device", "cpu", "--verify", "--json"];
        all.extend_from_slice(args);
        let out = downhill(&all);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args(["train", "--device", "cpu", "--verify", "--points", "1000"])
        .env("DOWNHILL_VERIFY_PERTURB", "1e-3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn wide_teachers_and_early_signals_do_not_exhaust_memory_or_get_lost() {
    let dir = tempfile::tempdir().unwrap();
    // A teacher 100,000 wide: its activations are made a piece at a time.
    let out_file = dir.path().join("w.csv");
    let out = downhill_within(
        Duration::from_secs(120),
        &[
            "generate",
            "--points",
            "3000",
            "--layers",
            "2,100000,1",
            "--out",
            s(&out_file),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The f64 reference's memory is checked before the data is made.
    refused(
        &downhill_within(
            Duration::from_secs(20),
            &[
                "train", "--points", "1e9", "--layers", "2,64,1", "--verify", "--device", "cpu",
            ],
        ),
        &["f64 reference", "needs about"],
    );
    // Ctrl-C while the data is being made ends the command at once.
    let child = Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args([
            "train", "--points", "2e8", "--steps", "1", "--device", "cpu",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn negative_numbers_with_exponents_and_devices_for_landscapes() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = points_and_model(dir.path());
    let out = downhill(&[
        "landscape",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--weight",
        "l0.n0.w0",
        "--from",
        "-1e-5",
        "--to",
        "1e-5",
        "--grid",
        "3",
        "--out",
        "/dev/null",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    refused(
        &downhill(&["train", "--points", "100", "--lr", "-1e-3"]),
        &["learning rate must be a finite number > 0"],
    );
}

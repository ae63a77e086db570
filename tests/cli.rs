//! The `downhill` command end to end: every subcommand, the JSON output, exit codes, and a
//! clear error (exit code 2, no panic, no output file) for every kind of bad input.

// The command's tests run in the default build (the command with its GPU path).
#![cfg(all(feature = "cli", feature = "gpu"))]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{downhill, path_str, stderr, stdout};
use ndarray::{arr1, arr2, Array2};
use serde_json::Value;

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }
    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.0.path().join(name);
        fs::write(&p, contents).unwrap();
        p
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// Runs `args`, expects exit code 2 with every `needles` in stderr, no panic, and no file at
/// `out` afterwards.
fn expect_bad_input(args: &[&str], needles: &[&str], out: Option<&Path>) {
    let result = downhill(args);
    let err = stderr(&result);
    assert_eq!(
        result.status.code(),
        Some(2),
        "args {args:?}\nstderr: {err}"
    );
    assert!(!err.contains("panicked"), "panic for {args:?}: {err}");
    for needle in needles {
        assert!(
            err.contains(needle),
            "stderr for {args:?} lacks '{needle}': {err}"
        );
    }
    if let Some(out) = out {
        assert!(
            !out.exists(),
            "{} was written despite the error",
            out.display()
        );
    }
}

const GOOD_CSV: &str = "x0,x1,y\n0.5,0.25,1.0\n-0.5,1.0,0.0\n0.1,0.2,0.3\n";

fn train_on(data: &Path, out: &Path) -> Output {
    downhill(&[
        "train",
        "--data",
        path_str(data),
        "--steps",
        "3",
        "--out",
        path_str(out),
    ])
}

// ---------------------------------------------------------------- the happy paths

#[test]
fn train_json_reports_the_run_and_history_semantics() {
    let dir = Dir::new();
    let model = dir.path("model.json");
    let history = dir.path("loss.csv");
    let out = downhill(&[
        "train",
        "--points",
        "5000",
        "--steps",
        "25",
        "--tol",
        "0",
        "--json",
        "--out",
        path_str(&model),
        "--history",
        path_str(&history),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).expect("stdout is one JSON object");
    assert_eq!(report["steps"], 25);
    assert_eq!(report["stopped"], "max_steps");
    // `auto` runs where `info` says it does: the CPU here, a hardware GPU where there is one.
    let device = report["device"].as_str().unwrap();
    let info = stdout(&downhill(&["info"]));
    let auto_line = info
        .lines()
        .find(|l| l.contains("--device auto uses:"))
        .unwrap_or_else(|| panic!("info names what auto uses:\n{info}"));
    let auto_is_gpu = auto_line.contains("uses: gpu");
    assert_eq!(
        device.starts_with("gpu"),
        auto_is_gpu,
        "{device} vs {auto_line}"
    );
    assert!(report["ms_per_step"].as_f64().unwrap() > 0.0);
    let losses: Vec<f64> = report["loss_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 25);
    assert!(losses[24] < losses[0], "the loss falls: {losses:?}");
    // final_loss is the loss of the model written out: `eval` on the same data agrees.
    let final_loss = report["final_loss"].as_f64().unwrap();
    assert!(final_loss < losses[24]);
    assert_eq!(report["model"]["format"], "downhill-model");
    let written: Value = serde_json::from_str(&fs::read_to_string(&model).unwrap()).unwrap();
    assert_eq!(written, report["model"]);
    // A row per step (the state before it), then the final state as step 26.
    let csv = fs::read_to_string(&history).unwrap();
    assert_eq!(csv.lines().count(), 27);
    assert!(csv.starts_with("step,loss,gradient_norm\n1,"));
    let last: Vec<&str> = csv.lines().last().unwrap().split(',').collect();
    assert_eq!(last[0], "26");
    let last_loss: f64 = last[1].parse().unwrap();
    assert!(
        (last_loss - final_loss).abs() <= 1e-12 * final_loss,
        "{last_loss} vs {final_loss}"
    );
}

#[test]
fn final_loss_is_the_loss_eval_reports_for_the_written_model() {
    let dir = Dir::new();
    let data = dir.path("points.csv");
    let model = dir.path("model.json");
    let gen = downhill(&[
        "generate",
        "--points",
        "500",
        "--seed",
        "3",
        "--out",
        path_str(&data),
    ]);
    assert_eq!(gen.status.code(), Some(0), "{}", stderr(&gen));
    let train = downhill(&[
        "train",
        "--data",
        path_str(&data),
        "--steps",
        "10",
        "--json",
        "--out",
        path_str(&model),
    ]);
    assert_eq!(train.status.code(), Some(0), "{}", stderr(&train));
    let report: Value = serde_json::from_str(&stdout(&train)).unwrap();
    let eval = downhill(&[
        "eval",
        "--model",
        path_str(&model),
        "--data",
        path_str(&data),
        "--json",
    ]);
    assert_eq!(eval.status.code(), Some(0), "{}", stderr(&eval));
    let e: Value = serde_json::from_str(&stdout(&eval)).unwrap();
    let (a, b) = (
        report["final_loss"].as_f64().unwrap(),
        e["mse"].as_f64().unwrap(),
    );
    assert!((a - b).abs() <= 1e-9 * b.max(1e-12), "{a} vs {b}");
    assert_eq!(e["points"], 500);
    assert_eq!(e["gradient"].as_object().unwrap().len(), 9);
    assert!(e["gradient"]["l0.n1.b"].is_number());
    let sse = e["sse"].as_f64().unwrap();
    assert!((sse / 500.0 - b).abs() <= 1e-12 * sse);
}

#[test]
fn default_train_tells_the_story_in_text() {
    let out = downhill(&["train", "--points", "20000", "--steps", "30"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "2-2-1",
        "20,000 points",
        "final mse",
        "time per step",
        "l0.n0.w0",
        "l1.n0.b",
    ] {
        assert!(text.contains(needle), "missing '{needle}' in:\n{text}");
    }
}

#[test]
fn train_stops_when_flat() {
    let out = downhill(&[
        "train", "--points", "2000", "--steps", "100000", "--tol", "0.05", "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["stopped"], "flat");
    assert!(report["steps"].as_u64().unwrap() < 100_000);
}

#[test]
fn train_resumes_from_init_and_keeps_its_shape() {
    let dir = Dir::new();
    let init = dir.file(
        "init.json",
        r#"{"format": "downhill-model", "version": 1, "layers": [
            {"activation": "identity", "weights": [[0.1, 0.2]], "bias": null}]}"#,
    );
    let data = dir.file("lin.csv", "a,b,y\n1,2,5\n2,1,4\n0,1,2\n3,3,9\n");
    let out = downhill(&[
        "train",
        "--init",
        path_str(&init),
        "--data",
        path_str(&data),
        "--lr",
        "0.02",
        "--steps",
        "2000",
        "--tol",
        "1e-9",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let w = &report["model"]["layers"][0]["weights"][0];
    // y = 1*a + 2*b exactly; descent from the init walks there.
    assert!((w[0].as_f64().unwrap() - 1.0).abs() < 1e-3, "{w}");
    assert!((w[1].as_f64().unwrap() - 2.0).abs() < 1e-3, "{w}");
    assert!(report["model"]["layers"][0]["bias"].is_null());
}

#[test]
fn divergence_exits_1_names_the_step_and_keeps_finite_weights() {
    let dir = Dir::new();
    let model = dir.path("model.json");
    let out = downhill(&[
        "train",
        "--points",
        "1000",
        "--lr",
        "1000",
        "--steps",
        "50",
        "--out",
        path_str(&model),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("diverged at step"), "{err}");
    assert!(err.contains("smaller learning rate"), "{err}");
    let written: Value = serde_json::from_str(&fs::read_to_string(&model).unwrap()).unwrap();
    for layer in written["layers"].as_array().unwrap() {
        for row in layer["weights"].as_array().unwrap() {
            for w in row.as_array().unwrap() {
                assert!(w.as_f64().is_some_and(f64::is_finite), "{w}");
            }
        }
    }
}

#[test]
fn generate_is_deterministic_and_writes_csv_and_npy() {
    let dir = Dir::new();
    let a = dir.path("a.csv");
    let b = dir.path("b.csv");
    let n = dir.path("c.npy");
    for (p, seed) in [(&a, "9"), (&b, "9")] {
        let out = downhill(&[
            "generate",
            "--points",
            "300",
            "--seed",
            seed,
            "--out",
            path_str(p),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
    let csv = fs::read_to_string(&a).unwrap();
    assert_eq!(csv.lines().next(), Some("x0,x1,y0"));
    assert_eq!(csv.lines().count(), 301);
    let out = downhill(&[
        "generate",
        "--points",
        "300",
        "--layers",
        "3,4,2",
        "--seed",
        "9",
        "--out",
        path_str(&n),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let arr: Array2<f32> = ndarray_npy::read_npy(&n).unwrap();
    assert_eq!(arr.dim(), (300, 5));
    assert!(arr.column(0).iter().all(|v| (-1.0..=1.0).contains(v)));
}

#[test]
fn predict_writes_one_row_per_input_row() {
    let dir = Dir::new();
    let model = dir.file(
        "m.json",
        r#"{"format": "downhill-model", "version": 1, "layers": [
            {"activation": "relu", "weights": [[1, 1], [-1, 1]], "bias": null},
            {"activation": "identity", "weights": [[2, -1]], "bias": null}]}"#,
    );
    // Inputs only, and inputs with targets: both are accepted.
    let inputs = dir.file("in.csv", "2,3\n1,1\n");
    let with_targets = dir.file("in2.csv", "x0,x1,y\n2,3,13\n1,1,0\n");
    for data in [&inputs, &with_targets] {
        let out = downhill(&[
            "predict",
            "--model",
            path_str(&model),
            "--data",
            path_str(data),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stdout(&out), "pred0\n9\n4\n");
    }
    let dest = dir.path("p.csv");
    let out = downhill(&[
        "predict",
        "--model",
        path_str(&model),
        "--data",
        path_str(&inputs),
        "--out",
        path_str(&dest),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&dest).unwrap(), "pred0\n9\n4\n");
}

#[test]
fn info_names_the_version_and_threads() {
    let out = downhill(&["info"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.contains(env!("CARGO_PKG_VERSION")) && text.contains("cpu threads"),
        "{text}"
    );
}

#[test]
fn help_shows_examples() {
    let out = downhill(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("Examples:"));
}

// ---------------------------------------------------------------- bad input: data files

#[test]
fn missing_data_file() {
    let dir = Dir::new();
    let out = dir.path("m.json");
    expect_bad_input(
        &[
            "train",
            "--data",
            "/nonexistent/points.csv",
            "--out",
            path_str(&out),
        ],
        &["/nonexistent/points.csv", "No such file"],
        Some(&out),
    );
}

#[test]
fn empty_data_file() {
    let dir = Dir::new();
    let data = dir.file("empty.csv", "");
    let out = dir.path("m.json");
    expect_bad_input(
        &["train", "--data", path_str(&data), "--out", path_str(&out)],
        &["empty.csv", "no data rows"],
        Some(&out),
    );
}

#[test]
fn header_only_data_file() {
    let dir = Dir::new();
    let data = dir.file("header.csv", "x0,x1,y\n");
    expect_bad_input(
        &["train", "--data", path_str(&data)],
        &["header.csv", "no data rows"],
        None,
    );
}

#[test]
fn non_numeric_cell_names_file_line_and_column() {
    let dir = Dir::new();
    let data = dir.file("bad.csv", "x0,x1,y\n1,2,3\n4,five,6\n");
    let out = dir.path("m.json");
    expect_bad_input(
        &["train", "--data", path_str(&data), "--out", path_str(&out)],
        &["bad.csv", "line 3", "column 2", "'five' is not a number"],
        Some(&out),
    );
}

#[test]
fn ragged_rows() {
    let dir = Dir::new();
    let data = dir.file("ragged.csv", "1,2,3\n4,5\n");
    expect_bad_input(
        &["train", "--data", path_str(&data)],
        &["ragged.csv", "line 2", "2 cells", "3"],
        None,
    );
}

#[test]
fn nan_in_csv() {
    let dir = Dir::new();
    let data = dir.file("nan.csv", "1,2,3\n4,NaN,6\n");
    expect_bad_input(
        &["train", "--data", path_str(&data)],
        &["nan.csv", "line 2", "column 2", "not a finite number"],
        None,
    );
}

#[test]
fn infinity_in_csv() {
    let dir = Dir::new();
    let data = dir.file("inf.csv", "1,2,inf\n");
    expect_bad_input(
        &["train", "--data", path_str(&data)],
        &["inf.csv", "line 1", "column 3", "not a finite number"],
        None,
    );
}

#[test]
fn column_count_does_not_match_the_network() {
    let dir = Dir::new();
    let data = dir.file("four.csv", "1,2,3,4\n5,6,7,8\n");
    expect_bad_input(
        &["train", "--data", path_str(&data)],
        &[
            "four.csv",
            "4 columns",
            "3 columns were expected",
            "--layers",
        ],
        None,
    );
    let model = dir.file("m.json", r#"{"format":"downhill-model","version":1,"layers":[{"activation":"identity","weights":[[1,2]],"bias":null}]}"#);
    expect_bad_input(
        &[
            "eval",
            "--model",
            path_str(&model),
            "--data",
            path_str(&data),
        ],
        &["four.csv", "4 columns"],
        None,
    );
}

#[test]
fn unknown_data_extension() {
    let dir = Dir::new();
    let data = dir.file("points.txt", "1,2,3\n");
    expect_bad_input(
        &["train", "--data", path_str(&data)],
        &["points.txt", ".csv or .npy"],
        None,
    );
}

#[test]
fn npy_with_wrong_dtype() {
    let dir = Dir::new();
    let data = dir.path("ints.npy");
    ndarray_npy::write_npy(&data, &arr2(&[[1i32, 2, 3], [4, 5, 6]])).unwrap();
    expect_bad_input(
        &["train", "--data", path_str(&data)],
        &["ints.npy", "expected float32 or float64"],
        None,
    );
}

#[test]
fn npy_with_wrong_number_of_dimensions() {
    let dir = Dir::new();
    let data = dir.path("flat.npy");
    ndarray_npy::write_npy(&data, &arr1(&[1.0f32, 2.0, 3.0])).unwrap();
    expect_bad_input(
        &["train", "--data", path_str(&data)],
        &["flat.npy", "1 dimensions", "expected 2"],
        None,
    );
}

#[test]
fn npy_with_truncated_body() {
    let dir = Dir::new();
    let data = dir.path("cut.npy");
    ndarray_npy::write_npy(&data, &Array2::<f32>::ones((100, 3))).unwrap();
    let bytes = fs::read(&data).unwrap();
    fs::write(&data, &bytes[..bytes.len() - 10]).unwrap();
    expect_bad_input(
        &["train", "--data", path_str(&data)],
        &["cut.npy", "truncated"],
        None,
    );
}

#[test]
fn npy_with_nan() {
    let dir = Dir::new();
    let data = dir.path("nan.npy");
    ndarray_npy::write_npy(&data, &arr2(&[[1.0f64, 2.0, 3.0], [4.0, f64::NAN, 6.0]])).unwrap();
    expect_bad_input(
        &["train", "--data", path_str(&data)],
        &["nan.npy", "row 2, column 2", "not a finite number"],
        None,
    );
}

#[test]
fn npy_float64_and_float32_both_train() {
    let dir = Dir::new();
    for (name, wide) in [("a64.npy", true), ("a32.npy", false)] {
        let data = dir.path(name);
        let rows = arr2(&[[0.5, 0.25, 1.0], [-0.5, 1.0, 0.0]]);
        if wide {
            ndarray_npy::write_npy(&data, &rows).unwrap();
        } else {
            ndarray_npy::write_npy(&data, &rows.mapv(|v| v as f32)).unwrap();
        }
        let out = downhill(&["train", "--data", path_str(&data), "--steps", "2", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
}

// ---------------------------------------------------------------- bad input: model files

fn bad_model(json: &str, needles: &[&str]) {
    let dir = Dir::new();
    let model = dir.file("model.json", json);
    let data = dir.file("d.csv", GOOD_CSV);
    let dest = dir.path("p.csv");
    let mut all = vec!["model.json"];
    all.extend_from_slice(needles);
    expect_bad_input(
        &[
            "predict",
            "--model",
            path_str(&model),
            "--data",
            path_str(&data),
            "--out",
            path_str(&dest),
        ],
        &all,
        Some(&dest),
    );
    expect_bad_input(
        &[
            "train",
            "--init",
            path_str(&model),
            "--data",
            path_str(&data),
        ],
        &all,
        None,
    );
}

#[test]
fn model_whose_layer_shapes_do_not_chain() {
    bad_model(
        r#"{"format":"downhill-model","version":1,"layers":[
            {"activation":"relu","weights":[[1,1],[1,1]],"bias":null},
            {"activation":"identity","weights":[[1,1,1]],"bias":null}]}"#,
        &[
            "layer 1 takes 3 inputs",
            "layer 0 has 2 nodes",
            "do not chain",
        ],
    );
}

#[test]
fn model_with_unknown_activation() {
    bad_model(
        r#"{"format":"downhill-model","version":1,"layers":[{"activation":"softplus","weights":[[1,1]],"bias":null}]}"#,
        &["unknown activation", "softplus", "tanh", "sigmoid"],
    );
}

/// tanh and sigmoid hidden layers train, are written into the model file, and come back.
#[test]
fn tanh_and_sigmoid_models_round_trip() {
    for act in ["tanh", "sigmoid"] {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.json");
        let out = downhill(&[
            "train",
            "--points",
            "500",
            "--steps",
            "20",
            "--layers",
            "2,3,1",
            "--hidden-activation",
            act,
            "--device",
            "cpu",
            "--out",
            model.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let net = downhill::model_file::load(&model).unwrap();
        assert_eq!(net.layers()[0].activation.name(), act);
        assert_eq!(net.layers()[1].activation.name(), "identity");
    }
}

/// An update rule's state needs version 2 and one value per parameter.
#[test]
fn model_with_a_bad_optimizer_state() {
    let layer = r#"[{"activation":"identity","weights":[[1,1]],"bias":null}]"#;
    bad_model(
        &format!(
            r#"{{"format":"downhill-model","version":1,"layers":{layer},
            "optimizer":{{"rule":"adam","updates":1,"first":[0,0],"second":[0,0]}}}}"#
        ),
        &["needs model format version 2"],
    );
    bad_model(
        &format!(
            r#"{{"format":"downhill-model","version":2,"layers":{layer},
            "optimizer":{{"rule":"adam","updates":1,"first":[0],"second":[0,0]}}}}"#
        ),
        &["one value per parameter"],
    );
}

#[test]
fn model_with_non_finite_weight() {
    bad_model(
        r#"{"format":"downhill-model","version":1,"layers":[{"activation":"identity","weights":[[1e999,1]],"bias":null}]}"#,
        &["line 1"],
    );
}

#[test]
fn model_with_wrong_format() {
    bad_model(
        r#"{"format":"keras","version":1,"layers":[{"activation":"identity","weights":[[1,1]],"bias":null}]}"#,
        &["\"format\" is \"keras\"", "downhill-model"],
    );
}

#[test]
fn model_with_bias_of_wrong_length() {
    bad_model(
        r#"{"format":"downhill-model","version":1,"layers":[{"activation":"identity","weights":[[1,1]],"bias":[1,2]}]}"#,
        &["\"bias\" has 2 values for 1 nodes"],
    );
}

#[test]
fn model_that_is_not_json() {
    bad_model("not json at all", &["not a valid downhill model"]);
}

// ---------------------------------------------------------------- bad input: arguments

#[test]
fn negative_learning_rate() {
    let dir = Dir::new();
    let out = dir.path("m.json");
    expect_bad_input(
        &[
            "train",
            "--points",
            "10",
            "--lr",
            "-0.1",
            "--out",
            path_str(&out),
        ],
        &["learning rate", "-0.1"],
        Some(&out),
    );
}

#[test]
fn zero_learning_rate() {
    expect_bad_input(
        &["train", "--points", "10", "--lr", "0"],
        &["learning rate must be a finite number > 0"],
        None,
    );
}

#[test]
fn zero_points() {
    expect_bad_input(
        &["train", "--points", "0"],
        &["--points must be at least 1"],
        None,
    );
    let dir = Dir::new();
    let out = dir.path("g.csv");
    expect_bad_input(
        &["generate", "--points", "0", "--out", path_str(&out)],
        &["--points must be at least 1"],
        Some(&out),
    );
}

#[test]
fn layer_width_of_zero() {
    expect_bad_input(
        &["train", "--points", "10", "--layers", "2,0,1"],
        &["width number 2 in [2, 0, 1] is 0"],
        None,
    );
}

#[test]
fn malformed_layer_list() {
    expect_bad_input(
        &["train", "--points", "10", "--layers", "2,x,1"],
        &["2,x,1"],
        None,
    );
}

#[test]
fn gpu_device_without_any_adapter_says_how_to_get_one() {
    // Point the Vulkan loader at no driver at all: wgpu then finds no adapter.
    let out = Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args(["train", "--points", "10", "--device", "gpu"])
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .env("WGPU_BACKEND", "vulkan")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no GPU adapter") && err.contains("mesa-vulkan-drivers"),
        "{err}"
    );
    // `auto` quietly uses the CPU instead.
    let out = Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args(["train", "--points", "10", "--steps", "2", "--json"])
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(report["device"].as_str().unwrap().starts_with("cpu"));
}

/// Whether this machine has any GPU adapter (lavapipe counts); GPU CLI tests need one.
fn has_gpu() -> bool {
    common::gpu().is_some()
}

#[test]
fn info_lists_the_adapters_and_what_auto_uses() {
    let text = stdout(&downhill(&["info"]));
    assert!(text.contains("--device auto uses:"), "{text}");
    if has_gpu() {
        assert!(
            text.contains("gpu adapters:") && text.contains("max storage binding"),
            "{text}"
        );
    }
}

#[test]
fn train_on_the_gpu_with_verify_passes() {
    if !has_gpu() {
        return;
    }
    let out = downhill(&[
        "train", "--device", "gpu", "--verify", "--points", "20000", "--steps", "60", "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        report["device"].as_str().unwrap().starts_with("gpu"),
        "{report}"
    );
    assert_eq!(report["verify"]["passed"], true, "{report}");
    assert_eq!(report["verify"]["steps_compared"], 60);
}

#[test]
fn eval_and_predict_on_the_gpu_match_the_cpu() {
    if !has_gpu() {
        return;
    }
    let dir = Dir::new();
    let data = dir.path("points.csv");
    let model = dir.path("model.json");
    assert_eq!(
        downhill(&["generate", "--points", "777", "--out", path_str(&data)])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        downhill(&[
            "train",
            "--data",
            path_str(&data),
            "--steps",
            "5",
            "--out",
            path_str(&model)
        ])
        .status
        .code(),
        Some(0)
    );
    let eval = |device| {
        let out = downhill(&[
            "eval",
            "--model",
            path_str(&model),
            "--data",
            path_str(&data),
            "--json",
            "--device",
            device,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_str::<Value>(&stdout(&out)).unwrap()
    };
    let (g, c) = (eval("gpu"), eval("cpu"));
    let (gm, cm) = (g["mse"].as_f64().unwrap(), c["mse"].as_f64().unwrap());
    assert!((gm - cm).abs() <= 1e-4 * cm, "{gm} vs {cm}");
    let predict = |device| {
        let out = downhill(&[
            "predict",
            "--model",
            path_str(&model),
            "--data",
            path_str(&data),
            "--device",
            device,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .skip(1)
            .map(|l| l.parse::<f64>().unwrap())
            .collect::<Vec<_>>()
    };
    let (gp, cp) = (predict("gpu"), predict("cpu"));
    assert_eq!(gp.len(), 777);
    for (a, b) in gp.iter().zip(&cp) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
}

#[test]
fn unwritable_output_is_refused_before_training() {
    expect_bad_input(
        &[
            "train",
            "--points",
            "10",
            "--out",
            "/nonexistent/dir/m.json",
        ],
        &["/nonexistent/dir/m.json"],
        None,
    );
}

#[test]
fn failed_run_leaves_a_previous_output_file_intact() {
    let dir = Dir::new();
    let out = dir.file("m.json", "previous contents");
    let data = dir.file("bad.csv", "1,2,x\n");
    let result = train_on(&data, &out);
    assert_eq!(result.status.code(), Some(2));
    assert_eq!(fs::read_to_string(&out).unwrap(), "previous contents");
}

#[test]
fn generate_from_a_teacher_model_and_eval_in_text() {
    let dir = Dir::new();
    let teacher = dir.file(
        "teacher.json",
        r#"{"format": "downhill-model", "version": 1, "layers": [
            {"activation": "identity", "weights": [[3, 1]], "bias": [0.5]}]}"#,
    );
    let data = dir.path("clean.csv");
    let out = downhill(&[
        "generate",
        "--points",
        "50",
        "--teacher",
        path_str(&teacher),
        "--noise",
        "0",
        "--out",
        path_str(&data),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Noise-free targets from the teacher: the teacher itself has zero loss and zero slope.
    let eval = downhill(&[
        "eval",
        "--model",
        path_str(&teacher),
        "--data",
        path_str(&data),
    ]);
    assert_eq!(eval.status.code(), Some(0), "{}", stderr(&eval));
    let text = stdout(&eval);
    assert!(text.contains("points: 50"), "{text}");
    assert!(text.contains("gradient of the mse"), "{text}");
    for line in text.lines().filter(|l| l.trim_start().starts_with("l0.")) {
        let value: f64 = line.split_whitespace().last().unwrap().parse().unwrap();
        assert!(value.abs() < 1e-5, "{line}");
    }
}

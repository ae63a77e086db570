//! What a newcomer reads: a report whose table and summary tell one story, resumed runs
//! numbered alike on screen and in the file, messages that say what happened, a bench table
//! that fits a terminal, gradients in the documented order, and pictures whose labels read
//! right (no `-0`, every decade of a log axis, the colour bar's ends at the surface's extremes,
//! titles that fit, step numbers that do not overlap).

// The command's tests run in the default build (the command with its GPU path).
#![cfg(all(feature = "cli", feature = "gpu"))]

mod common;

use std::path::Path;

use common::{downhill, path_str as s, points_and_model};

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The text elements of an SVG: (x, y, font size, content).
fn svg_texts(path: &Path) -> Vec<(f64, f64, f64, String)> {
    let source = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&source).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| {
            let num = |name: &str| {
                n.attribute(name)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0.0)
            };
            (
                num("x"),
                num("y"),
                num("font-size"),
                n.text().unwrap_or("").trim().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_report_table_ends_with_the_final_state_the_summary_repeats() {
    let out = downhill(&[
        "train", "--points", "2000", "--steps", "3", "--device", "cpu",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("mse before step"), "{stdout}");
    let final_row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("final ") && !l.contains("after"))
        .unwrap_or_else(|| panic!("no final row:\n{stdout}"));
    let row_loss = final_row.split_whitespace().nth(1).unwrap();
    let summary = stdout.lines().find(|l| l.starts_with("final mse")).unwrap();
    assert!(summary.contains(row_loss), "{final_row} / {summary}");
}

#[test]
fn a_resumed_run_numbers_its_table_as_its_history_and_a_replaced_history_is_announced() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.json");
    let history = dir.path().join("h.csv");
    let first = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--points",
            "2000",
            "--steps",
            "5",
            "--tol",
            "0",
            "--device",
            "cpu",
            "--history",
            s(&history),
        ];
        args.extend_from_slice(extra);
        downhill(&args)
    };
    let out = first(&["--out", s(&model)]);
    assert!(out.status.success());
    // Without --init, the same history path is replaced, and the command says so.
    let (_, stderr) = text(&first(&["--out", s(&model)]));
    assert!(stderr.contains("will be replaced"), "{stderr}");

    let out = downhill(&[
        "train",
        "--points",
        "2000",
        "--steps",
        "3",
        "--tol",
        "0",
        "--device",
        "cpu",
        "--init",
        s(&model),
        "--history",
        s(&history),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let first_row: usize = stdout
        .lines()
        .skip_while(|l| !l.contains("before step"))
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no numbered row:\n{stdout}"));
    let csv = std::fs::read_to_string(&history).unwrap();
    let steps: Vec<usize> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    // 5 steps and the final state (6), then 3 more from there and the final state.
    assert_eq!(steps, (1..=9).collect::<Vec<_>>());
    assert_eq!(first_row, 6, "{stdout}");
}

#[test]
fn messages_say_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let out = downhill(&["train", "--points", "500", "--steps", "2", "--tol", "0"]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("no flat-stop rule"), "{stdout}");
    assert!(!stdout.contains("0e0"), "{stdout}");

    let data = dir.path().join("p.csv");
    let model = dir.path().join("m.json");
    let preds = dir.path().join("pred.csv");
    assert!(
        downhill(&["generate", "--points", "300", "--out", s(&data)])
            .status
            .success()
    );
    let out = downhill(&[
        "train",
        "--data",
        s(&data),
        "--steps",
        "2",
        "--out",
        s(&model),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(
        !stdout.contains("m.json"),
        "file names go to stderr: {stdout}"
    );
    assert!(stderr.contains("wrote the model to"), "{stderr}");
    let out = downhill(&[
        "predict",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--out",
        s(&preds),
    ]);
    let (_, stderr) = text(&out);
    assert!(stderr.contains("wrote 300 predictions"), "{stderr}");
    let out = downhill(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--device",
        "cpu",
    ]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("device: cpu"), "{stdout}");
}

#[test]
fn eval_json_lists_the_gradient_in_parameter_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("p.csv");
    let model = dir.path().join("m.json");
    assert!(
        downhill(&["generate", "--points", "300", "--out", s(&data)])
            .status
            .success()
    );
    assert!(downhill(&[
        "train",
        "--data",
        s(&data),
        "--layers",
        "2,3,1",
        "--steps",
        "2",
        "--out",
        s(&model)
    ])
    .status
    .success());
    let out = downhill(&["eval", "--model", s(&model), "--data", s(&data), "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<String> = report["gradient"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let net = downhill::model_file::load(&model).unwrap();
    assert_eq!(keys, net.param_names());
    assert_eq!(keys[0], "l0.n0.w0");
    assert_eq!(
        keys[2], "l0.n1.w0",
        "weights of a node before the next node: {keys:?}"
    );
}

#[test]
fn the_bench_table_fits_a_terminal_and_names_its_bound() {
    let run = |wide: bool| {
        let mut args = vec![
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
        ];
        if wide {
            args.push("--wide");
        }
        let out = downhill(&args);
        assert!(out.status.success());
        text(&out).0
    };
    let narrow = run(false);
    let table: Vec<&str> = narrow
        .lines()
        .skip_while(|l| !l.starts_with("workload"))
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(table.len() >= 3, "{narrow}");
    for line in &table {
        assert!(
            line.chars().count() <= 100,
            "too wide ({}): {line}",
            line.len()
        );
    }
    assert!(narrow.contains("% of bandwidth"), "{narrow}");
    assert!(!narrow.contains("GB/s  "), "{narrow}");
    let wide = run(true);
    assert!(
        wide.contains("GB/s") && wide.contains("loss diff"),
        "{wide}"
    );
}

#[test]
fn picture_labels_read_right() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = points_and_model(dir.path());

    // No "-0" tick on a curve whose range is centred on zero.
    let curve = dir.path().join("c.svg");
    let out = downhill(&[
        "landscape",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--weight",
        "l1.n0.b",
        "--from",
        "-1",
        "--to",
        "1",
        "--grid",
        "21",
        "--out",
        s(&curve),
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    for (_, _, _, t) in svg_texts(&curve) {
        assert!(
            t != "-0" && t != "-0.0" && !t.starts_with("-0.0 "),
            "tick {t}"
        );
    }

    // The colour bar's lowest label is the surface's lowest loss.
    let surface = dir.path().join("s.svg");
    let grid_csv = dir.path().join("s.csv");
    let args = |out: &Path| {
        vec![
            "landscape".to_string(),
            "--model".into(),
            s(&model).into(),
            "--data".into(),
            s(&data).into(),
            "--weight".into(),
            "l0.n0.w0".into(),
            "--weight".into(),
            "l0.n0.w1".into(),
            "--grid".into(),
            "15".into(),
            "--out".into(),
            s(out).into(),
        ]
    };
    let run = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        assert!(downhill(&refs).status.success());
    };
    run(args(&surface));
    run(args(&grid_csv));
    let lowest = std::fs::read_to_string(&grid_csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse::<f64>().unwrap())
        .fold(f64::INFINITY, f64::min);
    let labels: Vec<f64> = svg_texts(&surface)
        .into_iter()
        .filter_map(|(_, _, _, t)| t.parse::<f64>().ok())
        .collect();
    assert!(
        labels.iter().any(|v| (v - lowest).abs() <= 0.006 * lowest),
        "no label at the lowest loss {lowest}: {labels:?}"
    );
    assert!(
        !std::fs::read_to_string(&surface).unwrap().contains("e-1<"),
        "labels read like 6.310e-1"
    );

    // A log-scale loss curve labels every decade it spans and its last value.
    let log_plot = dir.path().join("log.svg");
    let out = downhill(&[
        "train",
        "--data",
        s(&data),
        "--steps",
        "150",
        "--tol",
        "0",
        "--plot",
        s(&log_plot),
        "--plot-log",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let losses: Vec<f64> = report["loss_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let (lo, hi) = losses
        .iter()
        .fold((f64::INFINITY, 0f64), |(a, b), &v| (a.min(v), b.max(v)));
    let texts: Vec<String> = svg_texts(&log_plot).into_iter().map(|t| t.3).collect();
    let mut decade = 10f64.powf(lo.log10().ceil());
    while decade <= hi {
        let label = downhill::plot::loss_label(decade);
        assert!(
            texts.contains(&label),
            "decade {label} unlabelled: {texts:?}"
        );
        decade *= 10.0;
    }
    let last = downhill::plot::loss_label(*losses.last().unwrap());
    assert!(
        texts.contains(&last),
        "last value {last} unlabelled: {texts:?}"
    );
}

#[test]
fn long_titles_fit_and_step_numbers_do_not_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = points_and_model(dir.path());
    let picture = dir.path().join("narrow.svg");
    let out = downhill(&[
        "landscape",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--weight",
        "l1.n0.w0",
        "--descend",
        "--lr",
        "0.001",
        "--steps",
        "30",
        "--width",
        "360",
        "--height",
        "300",
        "--out",
        s(&picture),
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    let texts = svg_texts(&picture);
    // The title: the text at the top, wrapped onto several lines at this width. Every line
    // fits (DejaVu Sans averages about 0.55 em per character of such text), and together
    // they hold the whole title.
    let title: Vec<&(f64, f64, f64, String)> = texts.iter().filter(|t| t.1 < 70.0).collect();
    assert!(title.len() >= 2, "a long title at 360 px wraps: {title:?}");
    for (x, _, size, line) in &title {
        let width = 0.55 * size * line.chars().count() as f64;
        assert!(
            *x - width / 2.0 >= -1.0 && *x + width / 2.0 <= 361.0,
            "title line '{line}' ({size}px) does not fit 360 px"
        );
    }
    let joined: Vec<&str> = title.iter().map(|t| t.3.as_str()).collect();
    assert!(
        joined.join(" ").contains("Loss over l1.n0.w0"),
        "{joined:?}"
    );
    // 31 points visited, tiny steps: their numbers would pile up; only some are drawn.
    let numbers = texts
        .iter()
        // Step numbers are the 14-point labels (SVG writes sizes scaled by 0.806).
        .filter(|t| t.3.parse::<usize>().is_ok_and(|n| n <= 30) && t.2 < 11.5)
        .count();
    assert!((1..31).contains(&numbers), "{numbers} step numbers drawn");
}

//! The loss landscape and the pictures: the grid agrees with `eval` at every sampled point on
//! the CPU and the GPU path, the many-vectors kernels match the f64 reference at awkward sizes,
//! and the pictures decode (PNG) or parse (SVG) with the requested size.
//!
//! Tolerance: a landscape loss and the MSE of the same weights through `eval` agree within
//! 1e-5 relative on the CPU (both f32 with f64 block sums) and 1e-4 on the GPU (f32 trees).

// The command's tests run in the default build (the command with its GPU path).
#![cfg(all(feature = "cli", feature = "gpu"))]

mod common;

use std::path::Path;

use common::{downhill, random_case};
use downhill::cpu::{sse_of_many, CpuKernel, Reference};
use downhill::device::{DeviceChoice, Target};
use downhill::landscape::{self, WeightAxis};
use downhill::{model_file, Activation, LossKind};

fn gpu_available() -> bool {
    common::gpu().is_some()
}

#[test]
fn many_vector_sse_matches_the_reference_at_awkward_sizes() {
    for widths in [&[2usize, 2, 1][..], &[3, 9, 2], &[8, 16, 8, 1]] {
        for points in [1usize, 63, 64, 65, 257, 16 * 1024 + 1] {
            let (net, data) = random_case(widths, Activation::Relu, true, points, 5);
            let nets: Vec<_> = (0..5)
                .map(|k| {
                    let mut n = net.clone();
                    let p: Vec<f64> = n.params().iter().map(|v| v + 0.1 * k as f64).collect();
                    n.set_params(&p).unwrap();
                    n
                })
                .collect();
            let want: Vec<f64> = nets
                .iter()
                .map(|n| Reference.evaluate(n, &data).sse)
                .collect();
            let mut targets = vec![("cpu", sse_of_many(&nets, &data), 1e-5)];
            if gpu_available() {
                let gpu = Target::resolve(DeviceChoice::Gpu).unwrap();
                targets.push(("gpu", gpu.sse_of_many(&nets, &data).unwrap(), 1e-4));
            }
            for (name, got, tolerance) in targets {
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= tolerance * w.abs().max(1e-12),
                        "{name} {widths:?} n={points}: {g} vs {w}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_grid_point_agrees_with_eval_on_each_path() {
    let (net, data) = random_case(&[2, 2, 1], Activation::Relu, true, 1000, 8);
    let mut choices = vec![(DeviceChoice::Cpu, 1e-5)];
    if gpu_available() {
        choices.push((DeviceChoice::Gpu, 1e-4));
    }
    for (choice, tolerance) in choices {
        let target = Target::resolve(choice).unwrap();
        let x = WeightAxis::new(&net, "l0.n0.w0", None, None, 7).unwrap();
        let y = WeightAxis::new(&net, "l1.n0.b", Some(-1.0), Some(1.0), 5).unwrap();
        let land = landscape::compute(&target, &net, &data, vec![x, y], &mut |_, _| {}).unwrap();
        assert_eq!(land.losses.len(), 35);
        let base = net.params();
        for (k, &loss) in land.losses.iter().enumerate() {
            let mut params = base.clone();
            params[land.axes[0].index] = land.axes[0].values[k % 7];
            params[land.axes[1].index] = land.axes[1].values[k / 7];
            let mut at = net.clone();
            at.set_params(&params).unwrap();
            let want = Reference.evaluate(&at, &data).loss(LossKind::Mse);
            assert!(
                (loss - want).abs() <= tolerance * want,
                "{choice} grid point {k}: {loss} vs eval {want}"
            );
        }
        // The slope is the gradient entry, as `eval` reports it.
        let gradient = Reference.evaluate(&net, &data).gradient(LossKind::Mse);
        assert!(
            (land.slope[0] - gradient[land.axes[0].index]).abs()
                <= 1e-4 * gradient[land.axes[0].index].abs().max(1e-6)
        );
    }
}

#[test]
fn descent_on_one_weight_goes_downhill() {
    let (net, data) = random_case(&[2, 2, 1], Activation::Identity, true, 500, 2);
    let target = Target::resolve(DeviceChoice::Cpu).unwrap();
    let axis = WeightAxis::new(&net, "l1.n0.w0", None, None, 11).unwrap();
    let steps =
        landscape::descend(&target, &net, &data, &[axis], 0.1, &Default::default(), 10).unwrap();
    assert_eq!(steps.len(), 11);
    for pair in steps.windows(2) {
        assert!(pair[1].loss <= pair[0].loss, "{pair:?}");
    }
    // Only the chosen weight moves: the first step is exactly lr times the slope.
    let slope = Reference.evaluate(&net, &data).gradient(LossKind::Mse)
        [net.param_index("l1.n0.w0").unwrap()];
    let moved = steps[1].weights[0] - steps[0].weights[0];
    assert!(
        (moved + 0.1 * slope).abs() <= 1e-5 * slope.abs().max(1e-6),
        "{moved} vs {slope}"
    );
}

/// `--descend --optimizer adam`: the path is Adam's rule on the drawn weights alone, step by
/// step as written out in the README (bias-corrected moments), from the reference's slopes.
#[test]
fn descent_on_two_weights_takes_any_update_rule() {
    use downhill::optimizer::{Optimizer, Schedule, UpdateRule};
    let (net, data) = random_case(&[2, 3, 1], Activation::Tanh, true, 300, 4);
    let target = Target::resolve(DeviceChoice::Cpu).unwrap();
    let names = ["l0.n0.w0", "l1.n0.w1"];
    let axes: Vec<WeightAxis> = names
        .iter()
        .map(|n| WeightAxis::new(&net, n, None, None, 5).unwrap())
        .collect();
    let (beta1, beta2, eps, lr) = (0.9, 0.999, 1e-8, 0.05);
    let rule = UpdateRule {
        optimizer: Optimizer::Adam { beta1, beta2, eps },
        weight_decay: 0.0,
        schedule: Schedule::Constant,
    };
    let steps = landscape::descend(&target, &net, &data, &axes, lr, &rule, 6).unwrap();
    let index: Vec<usize> = names.iter().map(|n| net.param_index(n).unwrap()).collect();
    let mut params = net.params();
    let (mut m, mut v) = ([0.0; 2], [0.0; 2]);
    for (t, visited) in steps.iter().enumerate() {
        for (k, &i) in index.iter().enumerate() {
            let gap = (visited.weights[k] - params[i]).abs();
            assert!(gap <= 1e-5 * params[i].abs().max(1e-3), "step {t}: {gap:e}");
        }
        let mut at = net.clone();
        at.set_params(&params).unwrap();
        let gradient = Reference.evaluate(&at, &data).gradient(LossKind::Mse);
        let t = (t + 1) as i32;
        for (k, &i) in index.iter().enumerate() {
            let g = gradient[i];
            m[k] = beta1 * m[k] + (1.0 - beta1) * g;
            v[k] = beta2 * v[k] + (1.0 - beta2) * g * g;
            let m_hat = m[k] / (1.0 - beta1.powi(t));
            let v_hat = v[k] / (1.0 - beta2.powi(t));
            params[i] -= lr * m_hat / (v_hat.sqrt() + eps);
        }
    }
}

fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().expect("a valid PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("the PNG decodes");
    (info.width, info.height)
}

fn svg_size(path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("the SVG is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert!(
        doc.descendants().any(|n| n.tag_name().name() == "text"),
        "the SVG has text (axis labels, title)"
    );
    (
        root.attribute("width").unwrap().to_string(),
        root.attribute("height").unwrap().to_string(),
    )
}

#[test]
fn pictures_and_csv_from_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let out = downhill(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    run(&["generate", "--points", "500", "--out", &p("points.csv")]);
    run(&[
        "train",
        "--data",
        &p("points.csv"),
        "--steps",
        "20",
        "--device",
        "cpu",
        "--out",
        &p("model.json"),
        "--plot",
        &p("loss.png"),
    ]);
    assert_eq!(png_size(Path::new(&p("loss.png"))), (900, 600));
    run(&[
        "train",
        "--data",
        &p("points.csv"),
        "--steps",
        "5",
        "--device",
        "cpu",
        "--plot",
        &p("loss.svg"),
        "--plot-log",
    ]);
    assert_eq!(
        svg_size(Path::new(&p("loss.svg"))),
        ("900".into(), "600".into())
    );

    let common = [
        "landscape",
        "--model",
        &p("model.json"),
        "--data",
        &p("points.csv"),
        "--device",
        "cpu",
    ];
    let run_with = |args: &[String]| {
        let borrowed: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&borrowed)
    };
    let with = |extra: &[&str]| -> Vec<String> {
        common.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    run_with(&with(&[
        "--weight",
        "l1.n0.w0",
        "--descend",
        "--lr",
        "0.2",
        "--steps",
        "4",
        "--out",
        &p("curve.png"),
        "--width",
        "640",
        "--height",
        "480",
    ]));
    assert_eq!(png_size(Path::new(&p("curve.png"))), (640, 480));
    run_with(&with(&[
        "--weight",
        "l0.n0.w0",
        "--weight",
        "l0.n1.w1",
        "--grid",
        "21",
        "--descend",
        "--out",
        &p("surface.svg"),
    ]));
    assert_eq!(
        svg_size(Path::new(&p("surface.svg"))),
        ("900".into(), "600".into())
    );
    run_with(&with(&[
        "--weight",
        "l0.n0.b",
        "--grid",
        "9",
        "--from",
        "-1",
        "--to",
        "1",
        "--out",
        &p("grid.csv"),
    ]));

    // Every CSV row agrees with `eval` at those weights.
    let net = model_file::load(Path::new(&p("model.json"))).unwrap();
    let index = net.param_index("l0.n0.b").unwrap();
    let text = std::fs::read_to_string(p("grid.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("l0.n0.b,loss"));
    let rows: Vec<(f64, f64)> = lines
        .map(|l| {
            let (w, loss) = l.split_once(',').unwrap();
            (w.parse().unwrap(), loss.parse().unwrap())
        })
        .collect();
    assert_eq!(rows.len(), 9);
    assert_eq!((rows[0].0, rows[8].0), (-1.0, 1.0));
    for (k, (w, loss)) in rows.iter().enumerate() {
        let mut params = net.params();
        params[index] = *w;
        let mut at = net.clone();
        at.set_params(&params).unwrap();
        let model = p(&format!("at{k}.json"));
        model_file::save(&at, Path::new(&model)).unwrap();
        let out = run(&[
            "eval",
            "--model",
            &model,
            "--data",
            &p("points.csv"),
            "--device",
            "cpu",
            "--json",
        ]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mse = json["mse"].as_f64().unwrap();
        assert!(
            (loss - mse).abs() <= 1e-5 * mse,
            "row {k}: {loss} vs eval {mse}"
        );
    }
}

#[test]
fn bad_landscape_requests_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    assert!(
        downhill(&["generate", "--points", "50", "--out", &p("points.csv")])
            .status
            .success()
    );
    assert!(downhill(&[
        "train",
        "--data",
        &p("points.csv"),
        "--steps",
        "1",
        "--device",
        "cpu",
        "--out",
        &p("m.json")
    ])
    .status
    .success());
    let cases: &[(&[&str], &str)] = &[
        (&["--weight", "l9.n0.w0"], "l9.n0.w0"),
        (&["--weight", "l0.n0.w0", "--grid", "1"], "--grid"),
        (
            &["--weight", "l0.n0.w0", "--from", "2", "--to", "1"],
            "--from",
        ),
        (&["--weight", "l0.n0.w0", "--weight", "l0.n0.w0"], "twice"),
        (
            &["--weight", "l0.n0.w0", "--out", &p("picture.gif")],
            ".png or .svg",
        ),
        (
            &["--weight", "l0.n0.w0", "--out", &p("missing/dir/x.png")],
            "missing",
        ),
    ];
    for (extra, needle) in cases {
        let (model, points) = (p("m.json"), p("points.csv"));
        let args = [
            &[
                "landscape",
                "--model",
                &model,
                "--data",
                &points,
                "--device",
                "cpu",
            ][..],
            extra,
        ]
        .concat();
        let out = downhill(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!Path::new(&p("picture.gif")).exists());
    let out = downhill(&[
        "train",
        "--points",
        "100",
        "--steps",
        "1",
        "--plot",
        &p("loss.jpg"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!Path::new(&p("loss.jpg")).exists());
}

/// A run of no steps on one point: the text says "1 point", the history holds the state it
/// ended in, and the picture (that one point, drawn as a dot) decodes at the default size.
#[test]
fn a_run_of_no_steps_on_one_point_draws_its_point() {
    let dir = tempfile::tempdir().unwrap();
    let (picture, history) = (dir.path().join("s0.png"), dir.path().join("s0.csv"));
    let out = downhill(&[
        "train",
        "--points",
        "1",
        "--steps",
        "0",
        "--device",
        "cpu",
        "--plot",
        picture.to_str().unwrap(),
        "--history",
        history.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("on 1 point ("), "{text}");
    let rows = std::fs::read_to_string(&history).unwrap();
    assert_eq!(rows.lines().count(), 2, "{rows}");
    assert!(rows.lines().nth(1).unwrap().starts_with("1,"), "{rows}");
    assert_eq!(png_size(&picture), (900, 600));
}

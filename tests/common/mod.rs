//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses some of these helpers

use std::process::Output;

use downhill::{data, Activation, Dataset, Descent, Network};

/// Every activation a hidden layer may have.
pub const EVERY_ACTIVATION: [Activation; 4] = [
    Activation::Relu,
    Activation::Identity,
    Activation::Tanh,
    Activation::Sigmoid,
];

/// A seeded random student (with small nonzero biases, so their gradients start from a generic
/// point) and data from a seeded random relu teacher of the same shape.
pub fn random_case(
    widths: &[usize],
    hidden: Activation,
    bias: bool,
    points: usize,
    seed: u64,
) -> (Network, Dataset) {
    let teacher = Network::random(widths, Activation::Relu, true, seed + 1000).unwrap();
    let mut student = Network::random(widths, hidden, bias, seed).unwrap();
    let params: Vec<f64> = student
        .params()
        .iter()
        .enumerate()
        .map(|(i, p)| p + 0.01 * (i % 7) as f64)
        .collect();
    student.set_params(&params).unwrap();
    (
        student,
        data::generate(&teacher, points, 0.1, seed).unwrap(),
    )
}

/// The largest gap between two gradients, relative to the norm of `want`.
pub fn gradient_gap(got: &[f64], want: &[f64]) -> f64 {
    let scale = want.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f64::max)
        / scale
}

/// `got`'s SSE within `tolerance` of `want`'s (relative) and its gradient within `tolerance`
/// of `want`'s (relative to the gradient's norm); `case` names the case in a failure.
pub fn assert_evaluations_agree(
    case: &str,
    got: &downhill::Evaluation,
    want: &downhill::Evaluation,
    tolerance: f64,
) {
    let sse_gap = (got.sse - want.sse).abs() / want.sse.max(1e-12);
    assert!(
        sse_gap <= tolerance,
        "{case}: sse {} vs {}",
        got.sse,
        want.sse
    );
    let gap = gradient_gap(&got.sse_gradient, &want.sse_gradient);
    assert!(gap <= tolerance, "{case}: gradient gap {gap:e}");
}

/// Runs the `downhill` binary with `args` (no RUST_LOG from the environment).
#[cfg(feature = "cli")]
pub fn downhill(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

/// Whether a GPU adapter must be found (`DOWNHILL_REQUIRE_GPU=1`, set by .ci/run).
pub fn gpu_required() -> bool {
    std::env::var("DOWNHILL_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// An adapter (software ones included), or `None` after saying loudly that the GPU test is
/// skipped; with `DOWNHILL_REQUIRE_GPU=1` a missing adapter fails the test instead.
#[cfg(feature = "gpu")]
pub fn gpu() -> Option<downhill::gpu::GpuContext> {
    use downhill::gpu::{AdapterChoice, GpuContext};
    match GpuContext::open(AdapterChoice::Any).expect("opening an adapter that exists works") {
        Some(ctx) => Some(ctx),
        None if gpu_required() => {
            panic!(
                "DOWNHILL_REQUIRE_GPU=1 but no GPU adapter was found (install mesa-vulkan-drivers)"
            )
        }
        None => {
            skipped("no GPU adapter found (set DOWNHILL_REQUIRE_GPU=1 to fail instead)");
            None
        }
    }
}

/// Reports a test that could not run: loudly, and as a failure under CI (`CI=true`), where
/// every test must run.
pub fn skipped(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and this test could not run: {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// What a command printed on stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What a command printed on stdout.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A path as the `&str` a command line takes.
pub fn path_str(p: &std::path::Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// Runs the binary with `args` and fails the test if it takes longer than `limit` (a hang is
/// a defect); the limit only separates "finishes" from "never ends".
#[cfg(feature = "cli")]
pub fn downhill_within(limit: std::time::Duration, args: &[&str]) -> Output {
    use std::process::Stdio;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let start = std::time::Instant::now();
    while child
        .try_wait()
        .expect("the child can be waited for")
        .is_none()
    {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!(
                "`downhill {}` did not finish within {limit:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.wait_with_output().expect("the output can be read")
}

/// A data set of 2,000 points (seed 1) and a model trained 3 steps on it, in `dir`.
#[cfg(feature = "cli")]
pub fn points_and_model(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = dir.join("points.csv");
    let model = dir.join("model.json");
    let out = downhill(&[
        "generate",
        "--points",
        "2000",
        "--seed",
        "1",
        "--out",
        path_str(&data),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = downhill(&[
        "train",
        "--data",
        path_str(&data),
        "--steps",
        "3",
        "--out",
        path_str(&model),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    (data, model)
}

/// The sweep tests' descent: `steps` steps in rounds of 7 (so rounds end mid-way through the
/// engines' own batches), stopping when flat.
pub fn sweep_descent(steps: usize) -> Descent {
    Descent {
        max_steps: steps,
        tolerance: 1e-7,
        round: Some(7),
        ..Descent::default()
    }
}

/// The devices a command test runs on: the CPU, and the GPU where an adapter exists.
pub fn devices() -> Vec<&'static str> {
    #[cfg(feature = "gpu")]
    if gpu().is_some() {
        return vec!["cpu", "gpu"];
    }
    vec!["cpu"]
}

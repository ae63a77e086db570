//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses some of these helpers

use std::process::{Command, Output};

use downhill::{data, Activation, Dataset, Network};

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

/// Runs the `downhill` binary with `args` (no RUST_LOG from the environment).
pub fn downhill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

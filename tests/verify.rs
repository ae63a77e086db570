//! `train --verify` can fail: a checked path that drifts from the path it is compared with, or
//! that stops at another step or for another reason, is a failed verification (exit code 1),
//! on the CPU (fused kernel against the f64 reference) and on the GPU (against the fused CPU
//! kernel).

mod common;

use common::random_case;
use downhill::cpu::{CpuEngine, CpuVariant};
use downhill::descent::{EngineStop, Round, StepRule};
use downhill::verify::Verified;
use downhill::{Activation, Descent, Engine, Evaluation, Network, Result};

fn moved(net: &Network, amount: f64) -> Network {
    let mut out = net.clone();
    let params: Vec<f64> = net
        .params()
        .iter()
        .map(|p| p * (1.0 + amount) + amount)
        .collect();
    out.set_params(&params).unwrap();
    out
}

#[test]
fn a_fused_kernel_against_the_reference_passes_and_a_perturbed_one_fails() {
    let (net, set) = random_case(&[2, 4, 1], Activation::Relu, true, 3000, 2);
    let descent = Descent {
        learning_rate: 0.1,
        max_steps: 20,
        ..Descent::default()
    };
    let run = |amount: f64| {
        let fused = CpuEngine::new(net.clone(), &set, CpuVariant::Fused).unwrap();
        let mut verified = Verified::new(
            Box::new(WrongUpdate {
                inner: fused,
                amount,
            }),
            Box::new(CpuEngine::new(net.clone(), &set, CpuVariant::Reference).unwrap()),
        );
        descent.run(&mut verified, &mut []).unwrap();
        verified.report().unwrap()
    };
    let good = run(0.0);
    assert!(good.passed(), "{good:?}");
    assert_eq!(good.compared, 20);
    let bad = run(1e-3);
    assert!(!bad.passed(), "{bad:?}");
    let error = bad.failure().unwrap();
    assert_eq!(error.exit_code(), 1);
}

/// The fused engine with an update that is wrong by a relative `amount`, as a faulty kernel's.
struct WrongUpdate<'a> {
    inner: CpuEngine<'a>,
    amount: f64,
}

impl Engine for WrongUpdate<'_> {
    fn device(&self) -> String {
        self.inner.device()
    }
    fn run_steps(&mut self, first: usize, count: usize, rule: &StepRule) -> Result<Round> {
        let round = self.inner.run_steps(first, count, rule)?;
        let net = self.inner.network()?;
        self.inner.set_network(&moved(&net, self.amount))?;
        Ok(round)
    }
    fn evaluate(&mut self) -> Result<Evaluation> {
        self.inner.evaluate()
    }
    fn network(&mut self) -> Result<Network> {
        self.inner.network()
    }
    fn set_network(&mut self, net: &Network) -> Result<()> {
        self.inner.set_network(net)
    }
}

/// An engine that reports a flat stop at `stop_at`, whatever its gradient.
struct StopsEarly<'a> {
    inner: CpuEngine<'a>,
    stop_at: usize,
}

impl Engine for StopsEarly<'_> {
    fn device(&self) -> String {
        "an engine that stops early".into()
    }
    fn run_steps(&mut self, first: usize, count: usize, rule: &StepRule) -> Result<Round> {
        let until = (self.stop_at.saturating_sub(first)).min(count);
        let mut chunk = self.inner.run_steps(first, until, rule)?;
        if first + until == self.stop_at && until < count {
            chunk.stop = Some(EngineStop::Flat {
                step: self.stop_at,
                gradient_norm: 0.5,
            });
        }
        Ok(chunk)
    }
    fn evaluate(&mut self) -> Result<Evaluation> {
        self.inner.evaluate()
    }
    fn network(&mut self) -> Result<Network> {
        self.inner.network()
    }
    fn set_network(&mut self, net: &Network) -> Result<()> {
        self.inner.set_network(net)
    }
}

#[test]
fn paths_that_stop_at_different_steps_fail_verification() {
    let (net, set) = random_case(&[2, 2, 1], Activation::Relu, true, 2000, 9);
    let mut verified = Verified::new(
        Box::new(StopsEarly {
            inner: CpuEngine::new(net.clone(), &set, CpuVariant::Fused).unwrap(),
            stop_at: 4,
        }),
        Box::new(CpuEngine::new(net, &set, CpuVariant::Reference).unwrap()),
    );
    let descent = Descent {
        learning_rate: 0.1,
        max_steps: 10,
        ..Descent::default()
    };
    descent.run(&mut verified, &mut []).unwrap();
    let report = verified.report().unwrap();
    assert!(!report.passed());
    let why = report.mismatch.expect("a mismatch is named");
    assert!(
        why.contains("flat at step 4") && why.contains("not at all"),
        "{why}"
    );
}

#[cfg(all(feature = "cli", feature = "gpu"))]
fn verify_run(device: &str, perturb: Option<&str>) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_downhill"));
    command.args([
        "train", "--device", device, "--verify", "--points", "5000", "--steps", "30", "--json",
    ]);
    if let Some(amount) = perturb {
        command.env("DOWNHILL_VERIFY_PERTURB", amount);
    }
    command.output().unwrap()
}

#[cfg(all(feature = "cli", feature = "gpu"))]
fn check_cli(device: &str, against: &str) {
    let good = verify_run(device, None);
    let err = String::from_utf8_lossy(&good.stderr);
    assert_eq!(good.status.code(), Some(0), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&good.stdout).unwrap();
    assert_eq!(report["verify"]["passed"], true, "{report}");
    assert!(
        report["device"].as_str().unwrap().contains(against),
        "{}",
        report["device"]
    );
    let bad = verify_run(device, Some("1e-3"));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert!(err.contains("verification failed"), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(report["verify"]["passed"], false, "{report}");
}

#[cfg(all(feature = "cli", feature = "gpu"))]
#[test]
fn verify_on_the_cpu_checks_the_fused_kernel_against_the_f64_reference() {
    check_cli("cpu", "verified against cpu (reference");
}

#[cfg(all(feature = "cli", feature = "gpu"))]
#[test]
fn verify_on_the_gpu_checks_against_the_fused_cpu_kernel() {
    if common::gpu().is_none() {
        return;
    }
    check_cli("gpu", "verified against cpu (fused");
}

/// A run that diverges at the first step of a round (here step 2, right after the one-step
/// first round) goes back to its weights before the last update on both paths: the checking
/// path is given them too, so the diverged run verifies (it once failed with a 100% weight
/// difference).
#[cfg(all(feature = "cli", feature = "gpu"))]
#[test]
fn a_diverging_run_verifies_on_both_paths() {
    let devices = common::devices();
    for device in devices {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_downhill"))
            .args([
                "train", "--device", device, "--verify", "--points", "3000", "--lr", "1e4",
                "--json",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{device}: {err}");
        assert!(err.contains("diverged at step 2"), "{device}: {err}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["stopped"], "diverged", "{device}");
        assert_eq!(report["verify"]["passed"], true, "{device}: {report}");
    }
}

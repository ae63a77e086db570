//! The descent loop: history semantics, the stopping rule, divergence, rounds of steps.

use downhill::cpu::{CpuEngine, CpuKernel, CpuVariant, Reference};
use downhill::descent::StopReason;
use downhill::{data, Activation, Descent, LossKind, Network};

fn problem() -> (Network, downhill::Dataset) {
    let teacher = Network::lesson_baseline(Activation::Relu);
    let student = Network::random(&[2, 2, 1], Activation::Relu, true, 6).unwrap();
    (student, data::generate(&teacher, 3000, 0.05, 4).unwrap())
}

#[test]
fn history_holds_the_loss_before_each_step_and_final_loss_the_loss_after_the_last() {
    let (net, set) = problem();
    let mut engine = CpuEngine::new(net.clone(), &set, CpuVariant::Fused).unwrap();
    let descent = Descent {
        learning_rate: 0.3,
        max_steps: 12,
        ..Descent::default()
    };
    let outcome = descent.run(&mut engine, &mut []).unwrap();
    assert_eq!(outcome.stopped, StopReason::MaxSteps);
    assert_eq!(outcome.steps(), 12);
    let steps: Vec<usize> = outcome.history.iter().map(|r| r.step).collect();
    assert_eq!(steps, (1..=12).collect::<Vec<_>>());
    // loss_history[0] is the loss of the initial weights.
    let initial = Reference.evaluate(&net, &set).mse();
    assert!((outcome.history[0].loss - initial).abs() <= 1e-5 * initial);
    let last = Reference.evaluate(&outcome.network, &set).mse();
    assert!((outcome.final_loss - last).abs() <= 1e-5 * last);
}

#[test]
fn round_size_does_not_change_the_result() {
    let (net, set) = problem();
    let run = |round| {
        let mut engine = CpuEngine::new(net.clone(), &set, CpuVariant::Fused).unwrap();
        let descent = Descent {
            learning_rate: 0.3,
            max_steps: 20,
            round,
            ..Descent::default()
        };
        descent.run(&mut engine, &mut []).unwrap()
    };
    let a = run(Some(1));
    let b = run(Some(7));
    let c = run(None);
    assert_eq!(a.history, b.history);
    assert_eq!(a.history, c.history);
    assert_eq!(a.network, c.network);
}

#[test]
fn stops_when_flat_without_a_further_update() {
    let (net, set) = problem();
    let mut engine = CpuEngine::new(net, &set, CpuVariant::Reference).unwrap();
    let descent = Descent {
        learning_rate: 0.3,
        max_steps: 100_000,
        tolerance: 1e-2,
        ..Descent::default()
    };
    let outcome = descent.run(&mut engine, &mut []).unwrap();
    let StopReason::Flat {
        gradient_norm,
        tolerance,
    } = outcome.stopped
    else {
        panic!("expected a flat stop, got {:?}", outcome.stopped)
    };
    assert!(gradient_norm < 1e-2);
    assert_eq!(tolerance, 1e-2);
    let said = outcome.stopped.to_string();
    assert!(
        said.starts_with("flat: the gradient norm ") && said.ends_with("fell below --tol 0.01"),
        "{said}"
    );
    assert!(outcome.history.iter().all(|r| r.gradient_norm >= 1e-2));
    assert!(outcome.steps() < 100_000);
}

#[test]
fn divergence_stops_and_keeps_the_last_weights_with_a_finite_loss() {
    let (net, set) = problem();
    let mut engine = CpuEngine::new(net, &set, CpuVariant::Fused).unwrap();
    let descent = Descent {
        learning_rate: 50.0,
        max_steps: 500,
        loss: LossKind::Sse,
        ..Descent::default()
    };
    let outcome = descent.run(&mut engine, &mut []).unwrap();
    let StopReason::Diverged { step, .. } = outcome.stopped else {
        panic!("expected divergence, got {:?}", outcome.stopped)
    };
    // The diverging step made no update, and the update before it was undone (its weights
    // led to the blown-up loss): the history keeps the updates the kept weights have.
    assert_eq!(step, outcome.steps() + 2, "diverged at {step}");
    assert!(outcome.failure().is_some());
    assert!(outcome.network.params().iter().all(|p| p.is_finite()));
    assert!(outcome.final_loss.is_finite());
    // The final loss is the kept weights' loss.
    let kept = Reference.evaluate(&outcome.network, &set).sse;
    assert!((outcome.final_loss - kept).abs() <= 1e-5 * kept);
}

#[test]
fn invalid_settings_are_refused() {
    let (net, set) = problem();
    let mut engine = CpuEngine::new(net, &set, CpuVariant::Fused).unwrap();
    for bad in [
        Descent {
            learning_rate: 0.0,
            ..Descent::default()
        },
        Descent {
            learning_rate: f64::NAN,
            ..Descent::default()
        },
        Descent {
            tolerance: -1.0,
            ..Descent::default()
        },
        Descent {
            round: Some(0),
            ..Descent::default()
        },
    ] {
        let err = bad.run(&mut engine, &mut []).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
    }
}

/// An engine that works until the final evaluation, then fails there, as a GPU lost after the
/// last step would.
struct FailsAtTheEnd<'a> {
    inner: CpuEngine<'a>,
}

impl downhill::Engine for FailsAtTheEnd<'_> {
    fn device(&self) -> String {
        "a device that is lost at the end".into()
    }
    fn run_steps(
        &mut self,
        first_step: usize,
        count: usize,
        rule: &downhill::descent::StepRule,
    ) -> downhill::Result<downhill::descent::Round> {
        self.inner.run_steps(first_step, count, rule)
    }
    fn evaluate(&mut self) -> downhill::Result<downhill::Evaluation> {
        Err(downhill::Error::Gpu("the GPU device was lost".into()))
    }
    fn network(&mut self) -> downhill::Result<Network> {
        self.inner.network()
    }
}

/// A failure in the final loss evaluation must not lose the trained weights: the run ends as
/// failed (exit code 1 for the command) with the weights of the last step.
#[test]
fn a_failure_in_the_final_evaluation_keeps_the_trained_weights() {
    use downhill::Engine;
    let (net, set) = problem();
    let mut engine = FailsAtTheEnd {
        inner: CpuEngine::new(net.clone(), &set, CpuVariant::Fused).unwrap(),
    };
    let descent = Descent {
        learning_rate: 0.3,
        max_steps: 5,
        ..Descent::default()
    };
    let outcome = descent.run(&mut engine, &mut []).unwrap();
    assert_eq!(outcome.steps(), 5);
    assert!(matches!(outcome.stopped, StopReason::Failed { step: 6 }));
    assert!(outcome.final_loss.is_nan());
    let trained = engine.inner.network().unwrap();
    assert_eq!(outcome.network.params(), trained.params());
    assert_ne!(outcome.network.params(), net.params());
    let failure = outcome.failure().expect("the run is reported as failed");
    assert_eq!(failure.exit_code(), 1);
    assert!(failure.to_string().contains("lost"), "{failure}");
}

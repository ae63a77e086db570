//! Every worked example of the lesson ("the need for optimization", docs/LESSON.md), on every
//! CPU kernel.

use downhill::cpu::{CpuEngine, CpuKernel, CpuVariant, Fused, Reference};
use downhill::{Activation, Dataset, Descent, Layer, LossKind, Network};
use ndarray::{arr2, Array2};

const EXACT: f64 = 1e-6;

fn kernels() -> Vec<Box<dyn CpuKernel>> {
    vec![
        Box::new(Reference),
        Box::new(Fused::default()),
        Box::new(Fused::general()),
    ]
}

fn linear(weights: &[&[f64]]) -> Network {
    let rows: Vec<Vec<f64>> = weights.iter().map(|r| r.to_vec()).collect();
    let flat: Vec<f64> = rows.concat();
    let w = Array2::from_shape_vec((rows.len(), rows[0].len()), flat).unwrap();
    Network::new(vec![Layer::new(w, None, Activation::Identity).unwrap()]).unwrap()
}

fn one_point(inputs: &[f32], target: f32) -> Dataset {
    let mut row = inputs.to_vec();
    row.push(target);
    Dataset::from_rows(
        Array2::from_shape_vec((1, row.len()), row).unwrap().view(),
        inputs.len(),
    )
    .unwrap()
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= EXACT,
        "{what}: got {got}, want {want}"
    );
}

#[test]
fn a_baseline_network_predicts_9_and_misses_13_by_4() {
    let net = Network::lesson_baseline(Activation::Identity);
    // Hidden values 5 and 1, by hand from the first layer.
    let hidden = Network::new(vec![net.layers()[0].clone()]).unwrap();
    let h = hidden.predict_one(&[2.0, 3.0]);
    assert_close(h[0], 5.0, "node_0");
    assert_close(h[1], 1.0, "node_1");
    assert_close(net.predict_one(&[2.0, 3.0])[0], 9.0, "prediction");

    let data = one_point(&[2.0, 3.0], 13.0);
    for mut kernel in kernels() {
        let p = kernel.predict(&net, data.input_columns());
        assert_close(f64::from(p[(0, 0)]), 9.0, kernel.name());
        // The error is 13 - 9 = 4 as the lesson states it; its square is the SSE.
        let e = kernel.evaluate(&net, &data);
        assert_close(e.sse, 16.0, kernel.name());
    }
}

#[test]
fn a_better_output_weights_predict_13_exactly() {
    let mut net = Network::lesson_baseline(Activation::Identity);
    let mut params = net.params();
    let n = params.len();
    params[n - 2] = 3.0;
    params[n - 1] = -2.0;
    net.set_params(&params).unwrap();
    assert_close(net.predict_one(&[2.0, 3.0])[0], 13.0, "prediction");
    let data = one_point(&[2.0, 3.0], 13.0);
    for mut kernel in kernels() {
        assert_close(kernel.evaluate(&net, &data).sse, 0.0, kernel.name());
    }
}

#[test]
fn b_squared_error_table_totals_150_and_averages_50() {
    // A 1-1 identity network with weight 1 passes the predictions through unchanged.
    let net = linear(&[&[1.0]]);
    let rows = arr2(&[[10.0f32, 20.0], [8.0, 3.0], [6.0, 1.0]]);
    let data = Dataset::from_rows(rows.view(), 1).unwrap();
    for mut kernel in kernels() {
        let e = kernel.evaluate(&net, &data);
        assert_close(e.sse, 150.0, kernel.name());
        assert_close(e.mse(), 50.0, kernel.name());
        assert_close(e.loss(LossKind::Sse), 150.0, kernel.name());
    }
}

fn one_sse_step(net: Network, data: &Dataset, variant: CpuVariant) -> (Network, f64) {
    let mut engine = CpuEngine::new(net, data, variant).unwrap();
    let descent = Descent {
        learning_rate: 0.01,
        max_steps: 1,
        loss: LossKind::Sse,
        ..Descent::default()
    };
    let outcome = descent.run(&mut engine, &mut []).unwrap();
    (outcome.network, outcome.history[0].loss)
}

#[test]
fn c_one_weight_slope_is_minus_24_and_the_step_gives_2_24() {
    let net = linear(&[&[2.0]]);
    let data = one_point(&[3.0], 10.0);
    assert_close(net.predict_one(&[3.0])[0], 6.0, "prediction");
    for mut kernel in kernels() {
        let e = kernel.evaluate(&net, &data);
        assert_close(e.sse, 16.0, kernel.name()); // error 6 - 10 = -4
        assert_close(e.gradient(LossKind::Sse)[0], -24.0, kernel.name());
    }
    for variant in [CpuVariant::Fused, CpuVariant::Reference] {
        let (after, loss_before) = one_sse_step(net.clone(), &data, variant);
        assert_close(loss_before, 16.0, "loss before the step");
        assert_close(after.params()[0], 2.24, "new weight");
    }
}

#[test]
fn d_two_weights_slopes_30_40_and_the_step_halves_the_error() {
    let net = linear(&[&[1.0, 2.0]]);
    let data = one_point(&[3.0, 4.0], 6.0);
    assert_close(net.predict_one(&[3.0, 4.0])[0], 11.0, "prediction");
    for mut kernel in kernels() {
        let g = kernel.evaluate(&net, &data).gradient(LossKind::Sse);
        assert_close(g[0], 30.0, kernel.name());
        assert_close(g[1], 40.0, kernel.name());
    }
    for variant in [CpuVariant::Fused, CpuVariant::Reference] {
        let (after, _) = one_sse_step(net.clone(), &data, variant);
        let w = after.params();
        assert_close(w[0], 0.7, "w0");
        assert_close(w[1], 1.6, "w1");
        assert_close(after.predict_one(&[3.0, 4.0])[0], 8.5, "new prediction");
        let e = Reference.evaluate(&after, &data);
        assert_close(e.sse.sqrt(), 2.5, "new error");
    }
}

#[test]
fn mse_of_one_point_and_one_output_equals_its_sse() {
    let net = linear(&[&[1.0, 2.0]]);
    let data = one_point(&[3.0, 4.0], 6.0);
    let e = Reference.evaluate(&net, &data);
    assert_close(e.mse(), e.sse, "mse");
    assert_eq!(e.gradient(LossKind::Mse), e.gradient(LossKind::Sse));
}

//! The fused CPU kernel (specialised and general) against the f64 reference, and the
//! reference's gradient against central finite differences.
//!
//! Tolerances: the fused kernel computes in f32 and sums in f64 across tiles, so it agrees
//! with the f64 reference to about 1e-6 relative; the tests allow 2e-5 (relative to the SSE,
//! and to the gradient's norm for each gradient entry). Finite differences in f64 agree with
//! backpropagation to about 1e-8; the tests allow 1e-6.

mod common;

use common::{assert_evaluations_agree, random_case, EVERY_ACTIVATION};

use downhill::cpu::{CpuKernel, Fused, Reference};
use downhill::Activation;

const FUSED_TOLERANCE: f64 = 2e-5;

/// Shapes from the issue: the lesson's, a linear one, a deep one, a wide one, several outputs.
const SHAPES: &[&[usize]] = &[
    &[1, 1],
    &[2, 2, 1],
    &[3, 1],
    &[2, 8, 8, 1],
    &[8, 16, 1],
    &[3, 5, 2],
    &[4, 3, 2],
];

/// Around the tile sizes, the vector width and the parallel block size.
const SIZES: &[usize] = &[1, 7, 63, 64, 65, 1000, 4097, 16 * 1024 + 1];

fn check_against_reference(fused: &mut Fused, label: &str) {
    let mut seed = 0;
    for widths in SHAPES {
        for hidden in EVERY_ACTIVATION {
            for bias in [true, false] {
                for &points in SIZES {
                    seed += 1;
                    let (net, data) = random_case(widths, hidden, bias, points, seed);
                    let want = Reference.evaluate(&net, &data);
                    let got = fused.evaluate(&net, &data);
                    let case = format!("{label} {widths:?} {hidden} bias={bias} n={points}");
                    assert_evaluations_agree(&case, &got, &want, FUSED_TOLERANCE);
                    assert_eq!(got.points, points);
                }
            }
        }
    }
}

#[test]
fn fused_matches_reference_on_random_networks_at_awkward_sizes() {
    check_against_reference(&mut Fused::default(), "fused");
}

#[test]
fn general_tile_kernel_matches_reference_on_random_networks_at_awkward_sizes() {
    check_against_reference(&mut Fused::general(), "general");
}

#[test]
fn fused_predictions_match_reference() {
    for (seed, widths) in SHAPES.iter().enumerate() {
        for &points in &[1usize, 65, 4097] {
            let (net, data) = random_case(widths, Activation::Relu, true, points, seed as u64);
            let want = Reference.predict(&net, data.input_columns());
            for mut fused in [Fused::default(), Fused::general()] {
                let got = fused.predict(&net, data.input_columns());
                assert_eq!(got.dim(), want.dim());
                for (g, w) in got.iter().zip(want.iter()) {
                    assert!(
                        (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "{widths:?}: {g} vs {w}"
                    );
                }
            }
        }
    }
}

#[test]
fn fused_result_does_not_depend_on_the_thread_count() {
    let (net, data) = random_case(&[2, 2, 1], Activation::Relu, true, 100_000, 3);
    let many = Fused::default().evaluate(&net, &data);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| Fused::default().evaluate(&net, &data));
    assert_eq!(many, one);
}

#[test]
fn reference_gradient_matches_central_finite_differences() {
    for (seed, widths) in SHAPES.iter().enumerate() {
        for hidden in EVERY_ACTIVATION {
            let (net, data) = random_case(widths, hidden, true, 200, seed as u64 + 77);
            let analytic = Reference.evaluate(&net, &data).sse_gradient;
            let base = net.params();
            for (i, &g) in analytic.iter().enumerate() {
                let h = 1e-6 * (1.0 + base[i].abs());
                let mut probe = net.clone();
                let mut p = base.clone();
                p[i] = base[i] + h;
                probe.set_params(&p).unwrap();
                let up = Reference.evaluate(&probe, &data).sse;
                p[i] = base[i] - h;
                probe.set_params(&p).unwrap();
                let down = Reference.evaluate(&probe, &data).sse;
                let numeric = (up - down) / (2.0 * h);
                let scale = 1.0 + g.abs();
                assert!(
                    (numeric - g).abs() <= 1e-6 * scale,
                    "{widths:?} {hidden} param {i} ({}): analytic {g}, numeric {numeric}",
                    net.param_names()[i]
                );
            }
        }
    }
}

/// The f64 reference holds every layer's values for every point: a run it has no memory for
/// is refused before it allocates (it used to abort asking for 40 GB).
#[test]
fn the_reference_kernel_refuses_a_run_larger_than_memory() {
    use downhill::cpu::{CpuEngine, CpuVariant};
    use downhill::Network;
    let teacher = Network::lesson_baseline(Activation::Relu);
    let set = downhill::data::generate(&teacher, 100_000, 0.1, 1).unwrap();
    let wide = Network::random(&[2, 100_000, 1], Activation::Relu, true, 1).unwrap();
    match CpuEngine::new(wide, &set, CpuVariant::Reference) {
        Err(e) => {
            assert!(matches!(e, downhill::Error::TooLarge(_)), "{e}");
            assert!(e.to_string().contains("f64 reference"), "{e}");
        }
        Ok(_) => panic!("320 GB of activations cannot be available"),
    }
}

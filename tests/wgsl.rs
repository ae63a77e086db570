//! Every WGSL kernel, specialised for a range of network shapes, parses and validates with
//! naga. Needs no adapter, so it runs everywhere.

#![cfg(feature = "gpu")]

use downhill::gpu::shaders::{Reduction, Shape, WeightReads};
use downhill::{Activation, Layer, Network};
use ndarray::Array2;

fn validate(name: &str, source: &str) {
    let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| {
        panic!(
            "{name} does not parse:\n{}\n{source}",
            e.emit_to_string(source)
        )
    });
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name} does not validate: {e:?}\n{source}"));
}

/// Every kernel that sums is checked both ways.
const BOTH_WAYS: [Reduction; 2] = [Reduction::Workgroup, Reduction::Subgroups];

fn relu_output_network() -> Network {
    let layer = |nodes, inputs, act| Layer::new(Array2::ones((nodes, inputs)), None, act).unwrap();
    Network::new(vec![
        layer(3, 2, Activation::Identity),
        layer(1, 3, Activation::Relu),
    ])
    .unwrap()
}

#[test]
fn every_kernel_validates_for_every_kind_of_shape() {
    let mut nets = vec![relu_output_network()];
    for widths in [
        &[1usize, 1][..],
        &[2, 2, 1],
        &[3, 1],
        &[2, 8, 8, 1],
        &[8, 16, 1],
        &[3, 5, 2],
    ] {
        for hidden in [
            Activation::Relu,
            Activation::Identity,
            Activation::Tanh,
            Activation::Sigmoid,
        ] {
            for bias in [true, false] {
                nets.push(Network::random(widths, hidden, bias, 1).unwrap());
            }
        }
    }
    for net in &nets {
        let shape = Shape::of(net);
        let what = net.describe();
        for reads in [WeightReads::Shared, WeightReads::Registers] {
            let what = format!("{what} reading weights from {reads:?}");
            validate(
                &format!("predict.wgsl for {what}"),
                &shape.predict_source(reads),
            );
            for way in BOTH_WAYS {
                let what = format!("{what} summing {way:?}");
                for slots in [1, 3, shape.max_slots()] {
                    validate(
                        &format!("fused_step.wgsl for {what}, {slots} slots"),
                        &shape.fused_source(way, reads, slots),
                    );
                }
                validate(
                    &format!("landscape.wgsl for {what}"),
                    &shape.landscape_source(way, reads),
                );
            }
        }
        for way in BOTH_WAYS {
            let what = format!("{what} summing {way:?}");
            validate(
                &format!("reduce.wgsl for {what}"),
                &shape.reduce_source(way),
            );
            validate(
                &format!("update.wgsl for {what}"),
                &shape.update_source(way),
            );
        }
    }
    for way in BOTH_WAYS {
        validate(
            &format!("read_once.wgsl summing {way:?}"),
            &Shape::read_once_source(way),
        );
    }
    validate("fma_peak.wgsl", &Shape::fma_peak_source());
    validate("gather.wgsl", &Shape::gather_source());
}

/// The layered kernels (every entry point, for every layer) for wide, deep, many-output and
/// relu-output shapes, with and without biases.
#[test]
fn the_layered_kernels_validate_for_every_layer_of_wide_and_deep_shapes() {
    let deep: Vec<usize> = std::iter::once(4)
        .chain(std::iter::repeat_n(32, 10))
        .chain(std::iter::once(1))
        .collect();
    let mut nets = vec![relu_output_network()];
    for widths in [
        &[8usize, 64, 64, 1][..],
        &[16, 256, 256, 1],
        &[3, 300, 1],
        &[2, 1000, 1],
        &deep,
        &[64, 1],
        &[5, 20, 3],
    ] {
        for (hidden, bias) in [
            (Activation::Relu, true),
            (Activation::Identity, false),
            (Activation::Tanh, true),
            (Activation::Sigmoid, false),
        ] {
            nets.push(Network::random(widths, hidden, bias, 1).unwrap());
        }
    }
    for net in &nets {
        let shape = Shape::of(net);
        for l in 0..shape.layer_count() {
            for way in BOTH_WAYS {
                validate(
                    &format!(
                        "layered.wgsl for layer {l} of {} summing {way:?}",
                        net.describe()
                    ),
                    &shape.layered_source(l, 8192, way),
                );
            }
        }
    }
}

#[test]
fn shapes_beyond_the_kernel_limits_are_refused_with_the_limit_named() {
    let wide = Network::random(&[8, 64, 64, 1], Activation::Relu, true, 1).unwrap();
    let why = Shape::of(&wide).check().unwrap_err();
    assert!(
        why.contains("parameters") && why.contains("at most"),
        "{why}"
    );
    assert!(
        Shape::of(&Network::random(&[2, 2, 1], Activation::Relu, true, 1).unwrap())
            .check()
            .is_ok()
    );
}

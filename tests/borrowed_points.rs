//! Points borrowed from the caller's arrays (`Points::from_views`, what the Python package
//! passes numpy's arrays as): in either memory order, the engines read them in place and get
//! exactly the numbers they get from the same points owned, on the CPU and on the GPU, at
//! awkward sizes and across the CPU kernels' 16,384-point blocks.

mod common;

use downhill::batches::BatchPlan;
use downhill::data::Strided;
use downhill::device::Target;
use downhill::{data, Activation, Dataset, Descent, Evaluation, Network, Points};
use ndarray::{s, Array2, ArrayView2, ShapeBuilder};

/// Across the fused CPU kernel's block of 16,384 points and its 64-point tiles.
const SIZES: &[usize] = &[1, 63, 64, 65, 16_383, 16_385, 2 * 16_384 + 7];

/// A matrix of points (points x columns) holding `columns` (columns x points) in C order
/// (each point's values together) or Fortran order (each column together).
fn as_matrix(columns: ArrayView2<f32>, fortran: bool) -> Array2<f32> {
    let (width, points) = columns.dim();
    let shape = if fortran {
        (points, width).f()
    } else {
        (points, width).into_shape_with_order()
    };
    let mut matrix = Array2::zeros(shape);
    matrix.assign(&columns.t());
    matrix
}

/// The owned set's points as numpy would hand them over: X and y each in `order`.
struct Layouts {
    x: Array2<f32>,
    y: Array2<f32>,
}

impl Layouts {
    fn of(set: &Dataset, fortran: bool) -> Self {
        Layouts {
            x: as_matrix(set.input_columns(), fortran),
            y: as_matrix(set.target_columns(), fortran),
        }
    }

    fn borrowed(&self) -> Points<'_> {
        Points::from_views(self.x.t(), self.y.t()).unwrap()
    }
}

fn assert_same(case: &str, got: &Evaluation, want: &Evaluation) {
    assert_eq!(got.points, want.points, "{case}");
    assert_eq!(got.sse.to_bits(), want.sse.to_bits(), "{case}: sse");
    assert_eq!(got.sse_gradient, want.sse_gradient, "{case}: gradient");
}

/// The targets a test runs on: the CPU, and the GPU where an adapter exists.
fn targets_to_run() -> Vec<Target> {
    let mut targets = vec![Target::cpu(Default::default())];
    if common::devices().contains(&"gpu") {
        targets.extend(Target::any_gpu(true).unwrap());
    }
    targets
}

#[test]
fn borrowed_points_in_either_order_evaluate_exactly_as_owned_ones() {
    let targets = targets_to_run();
    // Rows of 2, 3 and 4 values are gathered by loops of their own width, 5 by any layout's.
    let shapes = [
        ("2-2-1", &[2, 2, 1][..]),
        ("3-8-2", &[3, 8, 2][..]),
        ("5-3-4", &[5, 3, 4][..]),
    ];
    for (case, widths) in shapes {
        let teacher = Network::random(widths, Activation::Tanh, true, 1).unwrap();
        let student = Network::random(widths, Activation::Sigmoid, true, 2).unwrap();
        for &points in SIZES {
            let owned = data::generate(&teacher, points, 0.1, points as u64).unwrap();
            for fortran in [false, true] {
                let layouts = Layouts::of(&owned, fortran);
                let borrowed = layouts.borrowed();
                let case = format!("{case}, {points} points, fortran {fortran}");
                assert!(borrowed.is_borrowed(), "{case}: read in place");
                assert_eq!(borrowed, owned, "{case}");
                // A C-ordered matrix's columns are strided unless it has one column or one
                // point.
                let single = |width: usize| width == 1 || points == 1;
                let contiguous = fortran || single(widths[0]) && single(widths[widths.len() - 1]);
                assert_eq!(
                    borrowed.contiguous_columns().is_some(),
                    contiguous,
                    "{case}"
                );
                for target in &targets {
                    let case = format!("{case}, {}", target.name());
                    let want = target.evaluate(&student, &owned).unwrap();
                    let got = target.evaluate(&student, &borrowed).unwrap();
                    assert_same(&case, &got, &want);
                    let nets = [student.clone(), teacher.clone()];
                    assert_eq!(
                        target.sse_of_many(&nets, &borrowed).unwrap(),
                        target.sse_of_many(&nets, &owned).unwrap(),
                        "{case}: sse of many"
                    );
                }
            }
        }
    }
}

#[test]
fn training_on_borrowed_points_takes_the_owned_points_steps() {
    let teacher = Network::random(&[2, 2, 1], Activation::Tanh, true, 3).unwrap();
    let start = Network::random(&[2, 2, 1], Activation::Sigmoid, true, 4).unwrap();
    let owned = data::generate(&teacher, 20_000, 0.1, 5).unwrap();
    let descent = Descent {
        learning_rate: 0.5,
        max_steps: 12,
        tolerance: 0.0,
        ..Descent::default()
    };
    for (target, fortran) in targets_to_run()
        .iter()
        .flat_map(|t| [(t, false), (t, true)])
    {
        let layouts = Layouts::of(&owned, fortran);
        let borrowed = layouts.borrowed();
        for batch in [None, Some(3_000)] {
            let run = |set: &Points| {
                let opened = match batch {
                    Some(size) => {
                        let plan = BatchPlan::new(set.len(), size, 9).unwrap();
                        target.batch_engine(start.clone(), set, plan)
                    }
                    None => target.engine(start.clone(), set),
                };
                let mut engine = opened.unwrap().boxed();
                descent.run(engine.as_mut(), &mut []).unwrap()
            };
            let (want, got) = (run(&owned), run(&borrowed));
            let case = format!("{}, fortran {fortran}, batch {batch:?}", target.name());
            assert_eq!(got.history.len(), 12, "{case}");
            assert_eq!(got.history, want.history, "{case}");
            assert_eq!(got.network, want.network, "{case}");
        }
    }
}

#[test]
fn a_held_out_split_of_borrowed_points_is_the_owned_split() {
    let teacher = Network::random(&[3, 4, 2], Activation::Relu, true, 6).unwrap();
    let owned = data::generate(&teacher, 1_001, 0.1, 7).unwrap();
    let layouts = Layouts::of(&owned, false);
    let (training, held_out) = layouts.borrowed().split(0.2, 8).unwrap();
    let (want_training, want_held_out) = owned.split(0.2, 8).unwrap();
    assert_eq!(training, want_training);
    assert_eq!(held_out, want_held_out);
    assert!(!training.is_borrowed() && !held_out.is_borrowed());
}

#[test]
fn points_that_are_not_one_block_of_memory_are_copied_once() {
    let teacher = Network::random(&[2, 3, 1], Activation::Relu, true, 10).unwrap();
    let owned = data::generate(&teacher, 101, 0.1, 11).unwrap();
    // Every other row of a matrix twice as tall: a view with a step, as `X[::2]` in numpy.
    let tall = Array2::from_shape_fn((202, 2), |(r, c)| owned.input_columns()[[c, r / 2]]);
    let y = as_matrix(owned.target_columns(), false);
    let points = Points::from_views(tall.slice(s![..;2, ..]).reversed_axes(), y.t()).unwrap();
    assert!(!points.is_borrowed());
    assert_eq!(points, owned);
}

#[test]
fn mismatched_or_empty_views_are_refused() {
    let x = Array2::<f32>::zeros((10, 2));
    let y = Array2::<f32>::zeros((9, 1));
    let err = Points::from_views(x.t(), y.t()).unwrap_err().to_string();
    assert!(err.contains("10 points but 9 targets"), "{err}");
    let none = Array2::<f32>::zeros((0, 2));
    let err = Points::from_views(none.t(), none.slice(s![.., ..1]).reversed_axes())
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least one point"), "{err}");
}

/// `owned`'s points as one C-ordered table of `[x..., y...]` rows, each row `spread` rows
/// apart (the rows between are zeros): what numpy hands over for `table[:, :-1]` and
/// `table[:, -1]` (spread 1) or `table[::2, :-1]` (spread 2).
fn table_of(owned: &Dataset, spread: usize) -> Vec<f32> {
    let width = owned.width();
    let mut table = vec![0.0; owned.len() * spread * width];
    let columns = owned.columns();
    for ((c, i), &v) in columns.indexed_iter() {
        table[i * spread * width + c] = v;
    }
    table
}

#[test]
fn strided_views_of_a_table_are_read_in_place_and_give_the_owned_numbers() {
    let teacher = Network::random(&[2, 4, 1], Activation::Tanh, true, 12).unwrap();
    let student = Network::random(&[2, 4, 1], Activation::Relu, true, 13).unwrap();
    let targets = targets_to_run();
    for points in [1, 65, 16_385] {
        let owned = data::generate(&teacher, points, 0.1, 14).unwrap();
        for spread in [1, 2] {
            let table = table_of(&owned, spread);
            let row = 3 * spread;
            let inputs = Strided::new(&table, (2, points), (1, row)).unwrap();
            // numpy gives the one-column axis of `t[:, 2].reshape(-1, 1)` the row stride.
            let outputs = Strided::new(&table[2..], (1, points), (row, row)).unwrap();
            let borrowed = Points::from_strided(inputs, outputs).unwrap();
            let case = format!("{points} points, every {spread} rows");
            assert!(borrowed.is_borrowed(), "{case}");
            assert_eq!(borrowed, owned, "{case}");
            for target in &targets {
                let want = target.evaluate(&student, &owned).unwrap();
                let got = target.evaluate(&student, &borrowed).unwrap();
                assert_same(&format!("{case}, {}", target.name()), &got, &want);
            }
        }
    }
}

#[test]
fn a_layout_past_the_values_is_refused_and_a_broadcast_one_read_in_place() {
    let values = [0.0f32; 10];
    assert!(Strided::new(&values, (2, 5), (1, 2)).is_some());
    assert!(
        Strided::new(&values, (2, 5), (1, 3)).is_none(),
        "reaches past the values"
    );
    // One point repeated (numpy's broadcast_to): a zero stride between points.
    let point = [0.5f32, -1.0, 2.0];
    let inputs = Strided::new(&point, (2, 70), (1, 0)).unwrap();
    let targets = Strided::new(&point[2..], (1, 70), (1, 0)).unwrap();
    let borrowed = Points::from_strided(inputs, targets).unwrap();
    let rows = Array2::from_shape_fn((70, 3), |(_, c)| point[c]);
    let owned = Dataset::from_rows(rows.view(), 2).unwrap();
    assert_eq!(borrowed, owned);
    let net = Network::random(&[2, 3, 1], Activation::Tanh, true, 18).unwrap();
    for target in targets_to_run() {
        let case = format!("broadcast, {}", target.name());
        assert_same(
            &case,
            &target.evaluate(&net, &borrowed).unwrap(),
            &target.evaluate(&net, &owned).unwrap(),
        );
    }
}

#[cfg(feature = "gpu")]
#[test]
fn borrowed_points_upload_in_chunks_as_owned_ones() {
    use downhill::gpu::{GpuEngine, GpuOptions};
    use downhill::Engine;
    let Some(ctx) = common::gpu() else { return };
    let teacher = Network::random(&[3, 5, 2], Activation::Tanh, true, 15).unwrap();
    let student = Network::random(&[3, 5, 2], Activation::Sigmoid, true, 16).unwrap();
    let owned = data::generate(&teacher, 5_000, 0.1, 17).unwrap();
    let layouts = Layouts::of(&owned, false);
    let borrowed = layouts.borrowed();
    let options = GpuOptions {
        max_chunk_points: Some(1_000),
        ..GpuOptions::default()
    };
    let evaluate = |set: &Points| {
        GpuEngine::new(ctx.clone(), student.clone(), set, options)
            .unwrap()
            .evaluate()
            .unwrap()
    };
    assert_same("chunks of 1,000", &evaluate(&borrowed), &evaluate(&owned));
}

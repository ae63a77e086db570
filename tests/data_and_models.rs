//! Data files, synthetic sets and model files: round trips and determinism.

use downhill::data::{generate, Table};
use downhill::{model_file, network, Activation, Network};
use ndarray::Array2;

#[test]
fn csv_and_npy_round_trip_the_same_points() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = Network::random(&[3, 4, 2], Activation::Relu, true, 5).unwrap();
    let set = generate(&teacher, 777, 0.1, 11).unwrap();
    for name in ["p.csv", "p.npy"] {
        let path = dir.path().join(name);
        set.save(&path).unwrap();
        let back = Table::load(&path)
            .unwrap()
            .into_dataset(&path, 3, 2)
            .unwrap();
        assert_eq!(back, set, "{name}");
    }
}

#[test]
fn npy_in_c_order_loads_like_fortran_order() {
    let dir = tempfile::tempdir().unwrap();
    let rows = Array2::from_shape_fn((50, 3), |(r, c)| (r * 3 + c) as f32 * 0.5);
    let c_path = dir.path().join("c.npy");
    ndarray_npy::write_npy(&c_path, &rows).unwrap();
    let f_path = dir.path().join("f.npy");
    ndarray_npy::write_npy(&f_path, &rows.t().as_standard_layout().t()).unwrap();
    let a = Table::load(&c_path)
        .unwrap()
        .into_dataset(&c_path, 2, 1)
        .unwrap();
    let b = Table::load(&f_path)
        .unwrap()
        .into_dataset(&f_path, 2, 1)
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.point(7), (vec![10.5, 11.0], vec![11.5]));
}

#[test]
fn synthetic_sets_depend_only_on_the_seed() {
    let teacher = Network::lesson_baseline(Activation::Relu);
    let a = generate(&teacher, 200_000, 0.05, 1).unwrap();
    let b = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| generate(&teacher, 200_000, 0.05, 1).unwrap());
    let c = generate(&teacher, 200_000, 0.05, 2).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Inputs are uniform in [-1, 1]; without noise the targets are the teacher's outputs.
    let clean = generate(&teacher, 1000, 0.0, 1).unwrap();
    for i in 0..1000 {
        let (x, y) = clean.point(i);
        assert!(x.iter().all(|v| (-1.0..=1.0).contains(v)));
        let want = teacher.predict_one(&[f64::from(x[0]), f64::from(x[1])])[0];
        assert!((f64::from(y[0]) - want).abs() < 1e-5);
    }
    let mean: f64 = (0..200_000)
        .map(|i| f64::from(a.point(i).0[0]))
        .sum::<f64>()
        / 200_000.0;
    assert!(mean.abs() < 0.01, "inputs are centred: mean {mean}");
}

#[test]
fn parameter_names_follow_the_flat_layout() {
    let net = Network::random(&[2, 3, 1], Activation::Relu, true, 0).unwrap();
    let names = net.param_names();
    assert_eq!(names.len(), net.param_count());
    assert_eq!(net.param_count(), 2 * 3 + 3 + 3 + 1);
    assert_eq!(&names[..3], ["l0.n0.w0", "l0.n0.w1", "l0.n1.w0"]);
    assert_eq!(names[6], "l0.n0.b");
    assert_eq!(names[9], "l1.n0.w0");
    assert_eq!(names[12], "l1.n0.b");
    assert_eq!(net.param_index("l1.n0.w2").unwrap(), 11);
    assert!(net.param_index("l9.n0.w0").is_err());
    // params() and set_params() agree with the layers' own arrays.
    let mut copy = net.clone();
    let shifted: Vec<f64> = net.params().iter().map(|p| p + 1.0).collect();
    copy.set_params(&shifted).unwrap();
    assert_eq!(
        copy.layers()[0].weights[(1, 0)],
        net.layers()[0].weights[(1, 0)] + 1.0
    );
    assert_eq!(copy.params(), shifted);
}

#[test]
fn model_files_round_trip_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.json");
    let net = Network::random(&[4, 3, 2], Activation::Identity, false, 9).unwrap();
    model_file::save(&net, &path).unwrap();
    assert_eq!(model_file::load(&path).unwrap(), net);
    // Only the model is left behind: the temporary file was renamed over it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("m.json")]);
}

#[test]
fn widths_parse_and_validate() {
    assert_eq!(network::parse_widths("2, 2,1").unwrap(), vec![2, 2, 1]);
    assert!(network::parse_widths("2").is_err());
    assert!(network::parse_widths("2,0,1").is_err());
    assert!(network::parse_widths("").is_err());
}

#[cfg(unix)]
#[test]
fn outputs_are_ordinary_files_not_private_temporaries() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.json");
    model_file::save(&Network::lesson_baseline(Activation::Identity), &path).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // A file created the ordinary way gets what the umask allows; so should the model.
    let plain = dir.path().join("plain");
    std::fs::File::create(&plain).unwrap();
    assert_eq!(
        mode(&path),
        mode(&plain),
        "model {:o}, plain {:o}",
        mode(&path),
        mode(&plain)
    );
}

/// A share of a synthetic set, made alone, is bit for bit those rows of the whole set: what
/// each process of a data-parallel run makes (shares across block boundaries and at the end).
#[test]
fn a_share_of_a_synthetic_set_is_those_rows_of_the_set() {
    use downhill::data::{generate, generate_share};
    let teacher = downhill::Network::lesson_baseline(downhill::Activation::Relu);
    let points = 200_003;
    let whole = generate(&teacher, points, 0.1, 9).unwrap();
    for share in [
        0..1,
        65_535..65_538,
        100_000..200_003,
        131_072..131_073,
        0..points,
    ] {
        let part = generate_share(&teacher, points, 0.1, 9, share.clone()).unwrap();
        let want = whole
            .columns()
            .slice(ndarray::s![.., share.clone()])
            .to_owned();
        assert_eq!(part.columns(), want.view(), "{share:?}");
    }
    assert!(generate_share(&teacher, points, 0.1, 9, 5..5).is_err());
    assert!(generate_share(&teacher, points, 0.1, 9, 0..points + 1).is_err());
}

/// A process's share of a `.npy` file, read by offset, is those rows of the file as a whole
/// file's read gives them, in either memory order and either width, across the blocks it is
/// read in; a bad value in a later block is named by its row in the file.
#[cfg(feature = "mpi")]
#[test]
fn a_share_of_a_npy_file_is_those_rows_of_the_file() {
    use ndarray::ShapeBuilder;
    use ndarray_npy::WriteNpyExt;
    let dir = tempfile::tempdir().unwrap();
    let rows = 600_001;
    let value = |i: usize| ((i * 7919) % 10_007) as f64 / 97.0 - 50.0;
    let values: Vec<f64> = (0..rows * 3).map(value).collect();
    let by_row = Array2::from_shape_vec((rows, 3), values.clone()).unwrap();
    let by_column = Array2::from_shape_vec((rows, 3).f(), values).unwrap();
    let files = [
        (
            "c32.npy",
            by_row
                .mapv(|v| v as f32)
                .write_npy(std::fs::File::create(dir.path().join("c32.npy")).unwrap()),
        ),
        (
            "f32.npy",
            by_column
                .mapv(|v| v as f32)
                .write_npy(std::fs::File::create(dir.path().join("f32.npy")).unwrap()),
        ),
        (
            "c64.npy",
            by_row.write_npy(std::fs::File::create(dir.path().join("c64.npy")).unwrap()),
        ),
        (
            "f64.npy",
            by_column.write_npy(std::fs::File::create(dir.path().join("f64.npy")).unwrap()),
        ),
    ];
    for (name, written) in files {
        written.unwrap();
        let path = dir.path().join(name);
        let whole = Table::load(&path).unwrap().columns;
        for share in [0..1, 262_143..524_290, 599_999..rows, 0..rows] {
            let (part, all) = Table::load_share(&path, |_| share.clone()).unwrap();
            assert_eq!(all, rows, "{name}");
            assert_eq!(
                part.columns.view(),
                whole.slice(ndarray::s![.., share.clone()]),
                "{name} {share:?}"
            );
        }
    }
    let mut bad = by_column.mapv(|v| v as f32);
    bad[[524_289, 2]] = f32::NAN;
    let path = dir.path().join("bad.npy");
    bad.write_npy(std::fs::File::create(&path).unwrap())
        .unwrap();
    let error = Table::load_share(&path, |_| 262_143..600_001)
        .unwrap_err()
        .to_string();
    assert!(error.contains("row 524290, column 3"), "{error}");
}

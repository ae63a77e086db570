//! The readers of files downhill did not write never panic: property tests feed the CSV,
//! `.npy` and model-JSON readers arbitrary bytes and mutations of valid files, and each must
//! answer with data or an error, never a panic or an abort. Proptest rather than cargo-fuzz:
//! it runs on the stable toolchain inside `cargo test` (so in CI on every change), and with
//! `PROPTEST_CASES=200000` it is the longer fuzzing run recorded in the closing notes.
//!
//! Every input that ever crashed a reader is kept below as a named regression test.

use downhill::data::Table;
use downhill::model_file;
use proptest::prelude::*;

fn load_table(bytes: &[u8], extension: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("input.{extension}"));
    std::fs::write(&path, bytes).unwrap();
    Table::load(&path).map(drop).map_err(|e| e.to_string())
}

fn load_model(bytes: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.json");
    std::fs::write(&path, bytes).unwrap();
    model_file::load(&path).map(drop).map_err(|e| e.to_string())
}

/// A valid `.npy` header (version 1) for `descr` and `shape`, then `data`.
fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': ({shape}), }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

const MODEL: &str = r#"{"format": "downhill-model", "version": 1, "layers": [
  {"activation": "relu", "weights": [[1, 1], [-1, 1]], "bias": [0, 0]},
  {"activation": "identity", "weights": [[2, -1]], "bias": null}]}"#;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn csv_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = load_table(&bytes, "csv");
    }

    #[test]
    fn csv_reader_survives_mangled_numbers(
        rows in proptest::collection::vec(
            proptest::collection::vec("[-+0-9eE.naifNI,x ]{0,12}", 1..5), 1..8)
    ) {
        let text: String = rows.iter().map(|r| r.join(",") + "\n").collect();
        let _ = load_table(text.as_bytes(), "csv");
    }

    #[test]
    fn npy_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = load_table(&bytes, "npy");
    }

    #[test]
    fn npy_reader_survives_any_header(
        descr in prop_oneof![
            Just("<f4".to_string()),
            Just("<f8".to_string()),
            Just(">f4".to_string()),
            Just("<i4".to_string()),
            "[<>|][a-z][0-9]{1,2}",
        ],
        fortran in any::<bool>(),
        shape in prop_oneof![
            (0u64..5, 0u64..5).prop_map(|(a, b)| format!("{a}, {b}")),
            (0u64..u64::MAX, 0u64..u64::MAX).prop_map(|(a, b)| format!("{a}, {b}")),
            "[0-9, ]{0,20}",
        ],
        data in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let _ = load_table(&npy(&descr, fortran, &shape, &data), "npy");
    }

    #[test]
    fn model_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = load_model(&bytes);
    }

    #[test]
    fn model_reader_survives_mutations(at in 0usize..MODEL.len(), with in r#"[-0-9.eE\[\]{}:,"a-z ]{0,6}"#, cut in any::<bool>()) {
        let mut text = MODEL.to_string();
        let at = (0..=at).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        if cut {
            text.truncate(at);
        }
        text.insert_str(at.min(text.len()), &with);
        let _ = load_model(text.as_bytes());
    }
}

/// Found by `npy_reader_survives_any_header`: a header promising 10^12 x 3 values made the
/// reader try to allocate 12 TB and abort. It is now a clear error naming the sizes.
#[test]
fn npy_header_promising_a_trillion_values_is_a_clear_error() {
    let bytes = npy("<f4", false, "1000000000000, 3", &[0u8; 48]);
    let err = load_table(&bytes, "npy").unwrap_err();
    assert!(
        err.contains("promises") && err.contains("truncated"),
        "{err}"
    );
}

/// Found by the longer run (200,000 cases): a header with a non-float type ('<i8', '|u1')
/// and a huge shape made the float64 fallback allocate 44 GB before checking the type.
#[test]
fn npy_header_of_another_type_promising_too_much_is_a_clear_error() {
    for descr in ["<i8", "|u1", "<c16", "<x0"] {
        let bytes = npy(descr, false, "5483832900, 1", &[0u8; 64]);
        let err = load_table(&bytes, "npy").unwrap_err();
        assert!(err.contains("promises"), "{descr}: {err}");
    }
}

/// The same through the command: exit code 2 and the file named, no abort.
#[cfg(feature = "cli")]
#[test]
fn npy_header_promising_too_much_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.npy");
    std::fs::write(
        &path,
        npy(
            "<f8",
            true,
            "18446744073709551615, 18446744073709551615",
            &[0u8; 16],
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args(["train", "--steps", "1", "--device", "cpu", "--data"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("huge.npy"), "{err}");
}

/// A CSV line of 100 MB is refused as soon as it passes 1 MiB, before it is held in memory,
/// with the line named.
#[test]
fn a_csv_line_of_100_mb_is_refused_without_reading_it() {
    let mut bytes = b"x0,x1,y0\n".to_vec();
    bytes.extend(std::iter::repeat_n(b'1', 100_000_000));
    bytes.extend_from_slice(b",1,2\n");
    let err = load_table(&bytes, "csv").unwrap_err();
    assert!(err.contains("line 2 is longer than"), "{err}");
}

/// A bad cell is quoted by its start only, so a long one does not flood the terminal.
#[test]
fn a_long_bad_cell_is_quoted_by_its_start() {
    let text = format!("1,2,{}\n", "z".repeat(5000));
    let err = load_table(text.as_bytes(), "csv").unwrap_err();
    assert!(
        err.contains("(5000 characters)") && err.len() < 300,
        "{err}"
    );
}

//! Nothing reachable from the command line panics, aborts or hangs: every numeric option of
//! every command, given any of a list of hostile values (zero, negative, huge, not finite, not
//! a number, past 64 bits), ends with exit code 0, 1 or 2 and no panic, in bounded time.

// The command's tests run in the default build (the command with its GPU path).
#![cfg(all(feature = "cli", feature = "gpu"))]

mod common;

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;

/// Values every numeric option is tried with.
const HOSTILE: &[&str] = &[
    "0",
    "1",
    "2",
    "-1",
    "1.5",
    "1e5",
    "1e12",
    "1e30",
    "1e300",
    "-1e308",
    "1e-300",
    "18446744073709551615",
    "99999999999999999999999",
    "nan",
    "inf",
    "-inf",
    "abc",
    "",
];

/// Options that set how much work is done: huge values there are legitimate requests for a
/// very long run, so they get the hostile values that end quickly (refused or small).
const WORK_LENGTH: &[&str] = &["--steps", "--repeats"];

/// A command with small, valid settings, and its numeric options.
struct Template {
    args: &'static [&'static str],
    options: &'static [&'static str],
}

const TEMPLATES: &[Template] = &[
    Template {
        args: &["train", "--points", "200", "--steps", "3"],
        options: &["--points", "--steps", "--lr", "--tol", "--noise", "--seed"],
    },
    Template {
        args: &["generate", "--points", "200", "--out", "OUT.csv"],
        options: &["--points", "--noise", "--seed"],
    },
    Template {
        args: &[
            "landscape",
            "--model",
            "MODEL",
            "--data",
            "DATA",
            "--weight",
            "l0.n0.w0",
            "--grid",
            "11",
            "--out",
            "OUT.png",
        ],
        options: &["--grid", "--from", "--to", "--width", "--height"],
    },
    Template {
        args: &[
            "landscape",
            "--model",
            "MODEL",
            "--data",
            "DATA",
            "--weight",
            "l0.n0.w0",
            "--weight",
            "l0.n1.w1",
            "--grid",
            "7",
            "--descend",
            "--steps",
            "2",
            "--out",
            "OUT.svg",
        ],
        options: &["--grid", "--from", "--to", "--lr", "--steps"],
    },
    Template {
        args: &[
            "bench",
            "--points",
            "500",
            "--layers",
            "2,2,1",
            "--steps",
            "1",
            "--repeats",
            "1",
            "--device",
            "cpu",
        ],
        options: &[
            "--points",
            "--steps",
            "--repeats",
            "--lr",
            "--reference-max-points",
        ],
    },
];

/// A directory with a data set and a model, made once for all cases.
fn fixtures() -> &'static (tempfile::TempDir, String, String) {
    static DIR: OnceLock<(tempfile::TempDir, String, String)> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("p.csv").to_str().unwrap().to_string();
        let model = dir.path().join("m.json").to_str().unwrap().to_string();
        assert!(
            common::downhill(&["generate", "--points", "300", "--out", &data])
                .status
                .success()
        );
        assert!(
            common::downhill(&["train", "--data", &data, "--steps", "2", "--out", &model])
                .status
                .success()
        );
        (dir, data, model)
    })
}

fn run_case(template: &Template, option: &str, value: &str) {
    let (dir, data, model) = fixtures();
    let out_dir = tempfile::tempdir_in(dir.path()).unwrap();
    let mut args: Vec<String> = template
        .args
        .iter()
        .map(|a| match *a {
            "DATA" => data.clone(),
            "MODEL" => model.clone(),
            a if a.starts_with("OUT.") => out_dir.path().join(a).to_str().unwrap().to_string(),
            a => a.to_string(),
        })
        .collect();
    match args.iter().position(|a| a == option) {
        Some(i) => args[i + 1] = value.to_string(),
        None => args.extend([option.to_string(), value.to_string()]),
    }
    // `--x=-1` so that negative values reach the option's own parser.
    let args: Vec<String> = {
        let mut joined = Vec::new();
        let mut i = 0;
        while i < args.len() {
            if args[i] == option && i + 1 < args.len() {
                joined.push(format!("{}={}", args[i], args[i + 1]));
                i += 2;
            } else {
                joined.push(args[i].clone());
                i += 1;
            }
        }
        joined
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args(&args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("`downhill {}` did not end in 60 s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    assert!(
        matches!(code, Some(0..=2)),
        "`downhill {}` ended with {:?}:\n{err}",
        args.join(" "),
        out.status
    );
    assert!(
        !err.contains("panicked"),
        "`downhill {}` panicked:\n{err}",
        args.join(" ")
    );
}

fn case() -> impl Strategy<Value = (usize, usize, usize)> {
    (0..TEMPLATES.len(), 0..8usize, 0..HOSTILE.len())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn numeric_options_never_panic_abort_or_hang((t, o, v) in case()) {
        let template = &TEMPLATES[t];
        let option = template.options[o % template.options.len()];
        let mut value = HOSTILE[v];
        if WORK_LENGTH.contains(&option)
            && value.parse::<f64>().is_ok_and(|n| n > 10.0)
        {
            value = "7";
        }
        run_case(template, option, value);
    }
}

/// The values that once crashed or hung, each tried on purpose (not left to chance).
#[test]
fn the_values_that_once_crashed_are_handled() {
    let train = &TEMPLATES[0];
    let land = &TEMPLATES[2];
    run_case(train, "--points", "1e12");
    run_case(train, "--points", "18446744073709551615");
    run_case(land, "--grid", "18446744073709551615");
    run_case(land, "--grid", "1e12");
    run_case(&TEMPLATES[3], "--grid", "1e7");
    run_case(land, "--from", "-1e308");
    run_case(&TEMPLATES[4], "--lr", "nan");
    run_case(&TEMPLATES[1], "--noise", "1e300");
}

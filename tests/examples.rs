//! Every example of the README and of each `--help` runs as written and gives a valid output,
//! at a reduced size where it asks for millions of points (counts above 100,000 become
//! 20,000). The README's commands run in order in one directory, as a reader would type them;
//! each `--help`'s examples run in a directory that holds the files they name.

// The command's tests run in the default build (the command with its GPU path).
#![cfg(all(feature = "cli", feature = "gpu"))]

mod common;

use std::path::Path;
use std::process::Command;

/// Points given to an example that asks for more than `REDUCE_ABOVE`.
const REDUCED: &str = "20000";
const REDUCE_ABOVE: f64 = 1e5;

/// The `downhill` commands of a text: `sh` code blocks in Markdown (`in_blocks`), or lines
/// that start with `downhill` (help text). Continuation lines are joined, comments dropped,
/// `cargo run --release --` read as `downhill`.
fn commands(text: &str, in_blocks: bool) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut in_sh = !in_blocks;
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if in_blocks && trimmed.starts_with("```") {
            in_sh = trimmed == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        if let Some(start) = trimmed.strip_suffix('\\') {
            pending.push_str(start);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let full = std::mem::take(&mut pending);
        let code = match full.find(" #") {
            Some(i) => &full[..i],
            None => &full[..],
        };
        let code = code.replace("cargo run --release --", "downhill");
        let words: Vec<String> = code.split_whitespace().map(String::from).collect();
        if words.first().map(String::as_str) == Some("downhill") && words.len() > 1 {
            found.push(reduced(words[1..].to_vec()));
        }
    }
    found
}

/// The same command with every count of points above `REDUCE_ABOVE` made `REDUCED`.
fn reduced(mut args: Vec<String>) -> Vec<String> {
    for i in 1..args.len() {
        if args[i - 1] == "--points" {
            let parts: Vec<String> = args[i]
                .split(',')
                .map(|p| match p.parse::<f64>() {
                    Ok(n) if n > REDUCE_ABOVE => REDUCED.to_string(),
                    _ => p.to_string(),
                })
                .collect();
            args[i] = parts.join(",");
        }
    }
    args
}

/// Runs one example in `dir`; checks its exit code and that what it promises exists.
fn run(dir: &Path, args: &[String], source: &str) {
    if args.iter().any(|a| a == "gpu") && common::gpu().is_none() {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let shown = format!("{source}: downhill {}", args.join(" "));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{shown}\n{err}");
    assert!(!err.contains("panicked"), "{shown}\n{err}");
    if args.iter().any(|a| a == "--json") {
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("{shown}: stdout is not one JSON object: {e}"));
    }
    for (flag, path) in args.iter().zip(args.iter().skip(1)) {
        if ["--out", "--history", "--plot"].contains(&flag.as_str()) {
            let written = dir.join(path);
            let size = std::fs::metadata(&written).map(|m| m.len()).unwrap_or(0);
            assert!(size > 0, "{shown}: {path} was not written");
        }
    }
    if args.first().map(String::as_str) != Some("info")
        && !args.iter().any(|a| a == "--out" || a == "--json")
    {
        assert!(!out.stdout.is_empty(), "{shown}: printed no result");
    }
}

#[test]
fn every_readme_example_runs_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let examples = commands(&readme, true);
    assert!(
        examples.len() >= 20,
        "only {} examples found",
        examples.len()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("docs")).unwrap();
    for args in &examples {
        run(dir.path(), args, "README");
    }
}

#[test]
fn every_help_example_runs_as_written() {
    let help = |sub: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_downhill"));
        if let Some(sub) = sub {
            command.arg(sub);
        }
        let out = command.arg("--help").output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let subcommands = [
        "train",
        "eval",
        "predict",
        "generate",
        "landscape",
        "bench",
        "info",
    ];
    for sub in std::iter::once(None).chain(subcommands.map(Some)) {
        let text = help(sub);
        let name = sub.unwrap_or("downhill");
        let examples = text
            .split_once("Examples:")
            .unwrap_or_else(|| panic!("{name} --help has no Examples section:\n{text}"))
            .1;
        let found = commands(examples, false);
        assert!(!found.is_empty(), "{name} --help lists no example");
        // The files the examples read, made first.
        let dir = tempfile::tempdir().unwrap();
        for prelude in [
            "generate --points 2000 --seed 1 --out points.csv",
            "train --data points.csv --steps 5 --out model.json",
        ] {
            let args: Vec<String> = prelude.split(' ').map(String::from).collect();
            run(dir.path(), &args, "prelude");
        }
        for args in &found {
            run(dir.path(), args, &format!("{name} --help"));
        }
    }
}

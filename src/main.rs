//! The `downhill` command: parses arguments, calls the library, prints results.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    quiet_wayland_probe();
    quiet_stdout_failures();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp(None)
        .init();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("downhill: error: {error}");
            ExitCode::from(error.exit_code() as u8)
        }
    }
}

/// `println!` panics when stdout cannot be written: a closed pipe (`downhill eval ... | head`)
/// or a full disk. Neither is a bug: a closed pipe ends the command quietly, as the default
/// SIGPIPE action would (exit code 141); another write failure is a one-line error (exit 2).
/// Every output file was already written and put in place before anything is printed.
fn quiet_stdout_failures() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if let Some(why) = message.strip_prefix("failed printing to stdout: ") {
            if why.contains("Broken pipe") {
                std::process::exit(141);
            }
            eprintln!("downhill: error: writing the result to stdout failed: {why}");
            std::process::exit(2);
        }
        default(info);
    }));
}

/// Mesa's Vulkan drivers try to reach a Wayland compositor when a GPU instance is created, and
/// without a usable `XDG_RUNTIME_DIR` libwayland prints `error: XDG_RUNTIME_DIR is invalid or
/// not set in the environment.` twice, which a user reads as a failure. Without that directory
/// no compositor can be reached anyway (unless `WAYLAND_DISPLAY` is an absolute socket path);
/// an absolute `WAYLAND_DISPLAY` that does not exist makes the attempt fail quietly. Set here,
/// before any other thread exists.
fn quiet_wayland_probe() {
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .is_some_and(|d| std::path::Path::new(&d).is_dir());
    let absolute_display =
        std::env::var_os("WAYLAND_DISPLAY").is_some_and(|d| std::path::Path::new(&d).is_absolute());
    if !runtime_dir && !absolute_display {
        std::env::set_var("WAYLAND_DISPLAY", "/nonexistent/downhill-without-wayland");
    }
}

//! The `downhill` command: parses arguments, calls the library, prints results.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    quiet_wayland_probe();
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

/// Mesa's Vulkan drivers try to reach a Wayland compositor when a GPU instance is created, and
/// without `XDG_RUNTIME_DIR` libwayland prints `error: XDG_RUNTIME_DIR is invalid or not set in
/// the environment.` twice, which a user reads as a failure. Without that directory no
/// compositor can be reached anyway; an absolute `WAYLAND_DISPLAY` that does not exist makes
/// the attempt fail quietly. Set here, before any other thread exists.
fn quiet_wayland_probe() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
    {
        std::env::set_var("WAYLAND_DISPLAY", "/nonexistent/downhill-without-wayland");
    }
}

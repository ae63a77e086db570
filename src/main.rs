//! The `downhill` command: parses arguments, calls the library, prints results.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
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

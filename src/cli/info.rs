//! `downhill info`.

use std::process::ExitCode;

use downhill::Result;

pub fn run() -> Result<ExitCode> {
    println!("downhill {}", env!("CARGO_PKG_VERSION"));
    println!("cpu threads: {}", rayon::current_num_threads());
    println!("gpu: not available in this build (the GPU path is not built yet)");
    println!("--device auto uses: cpu");
    Ok(ExitCode::SUCCESS)
}

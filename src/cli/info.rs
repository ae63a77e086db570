//! `downhill info`.

use std::process::ExitCode;

use downhill::Result;

pub fn run() -> Result<ExitCode> {
    println!("downhill {}", env!("CARGO_PKG_VERSION"));
    println!("cpu threads: {}", rayon::current_num_threads());
    #[cfg(feature = "gpu")]
    print_adapters();
    #[cfg(not(feature = "gpu"))]
    {
        println!(
            "gpu adapters: none (this build has no GPU path: built without the `gpu` feature)"
        );
        println!("--device auto uses: cpu (no GPU path in this build)");
        println!("--device gpu: not available");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "gpu")]
fn print_adapters() {
    use downhill::gpu::{list_adapters, preferred_adapter, AdapterChoice};
    let adapters = list_adapters();
    if adapters.is_empty() {
        println!("gpu adapters: none found (on Linux, Mesa's software Vulkan driver gives one: apt-get install mesa-vulkan-drivers libvulkan1)");
    } else {
        println!("gpu adapters:");
        for a in &adapters {
            println!(
                "  {} ({}, {}, {}{})",
                a.name,
                a.backend,
                a.device_type,
                if a.software { "software" } else { "hardware" },
                if a.driver.is_empty() {
                    String::new()
                } else {
                    format!(", driver {}", a.driver)
                }
            );
            println!(
                "    max storage binding {} MiB, max buffer {} MiB, max workgroups per dimension {}, max invocations per workgroup {}",
                a.max_storage_binding_bytes >> 20,
                a.max_buffer_bytes >> 20,
                a.max_workgroups_per_dimension,
                a.max_invocations_per_workgroup
            );
            match a.subgroup_sizes {
                Some((low, high)) if low == high => {
                    println!("    subgroups of {low}: the kernels sum with subgroup operations")
                }
                Some((low, high)) => println!(
                    "    subgroups of {low} to {high}: the kernels sum with subgroup operations"
                ),
                None => println!("    no subgroup operations: the kernels sum in workgroup memory"),
            }
        }
    }
    match preferred_adapter(AdapterChoice::HardwareOnly) {
        Some(a) => println!("--device auto uses: gpu ({})", a.name),
        None => println!("--device auto uses: cpu (no hardware GPU adapter)"),
    }
    match preferred_adapter(AdapterChoice::Any) {
        Some(a) => println!("--device gpu uses: {}", a.name),
        None => println!("--device gpu: not available"),
    }
}

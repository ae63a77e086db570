//! What a command will allocate, computed (with checked arithmetic) and compared with the
//! memory the machine has available before anything is allocated: a request for 10^12 points
//! must be a clear error in a moment, not an abort after the allocator gave up or the machine
//! started swapping.

use crate::error::{Error, Result};

/// Memory the machine can give this process now, in bytes: `MemAvailable` on Linux; `None`
/// where it cannot be told (then only arithmetic overflow is refused).
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `n` bytes in words: `1.2 GB`, `512 MB`, `300 bytes`.
pub fn describe_bytes(n: u64) -> String {
    const UNITS: [(&str, f64); 4] = [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)];
    for (unit, size) in UNITS {
        if n as f64 >= size {
            return format!("{:.1} {unit}", n as f64 / size);
        }
    }
    format!("{n} bytes")
}

/// Bytes for `count` values of `size` bytes each, `None` on overflow.
pub fn bytes_for(count: usize, size: usize) -> Option<u64> {
    (count as u64).checked_mul(size as u64)
}

/// Refuses `what` when it needs more memory than is available (or more than can be counted:
/// `needed` is `None` after an overflow).
pub fn check_memory(what: &str, needed: Option<u64>) -> Result<()> {
    let available = available_memory();
    match (needed, available) {
        (None, _) => Err(Error::TooLarge(format!(
            "{what} needs more memory than can be counted (over 2^64 bytes)"
        ))),
        (Some(n), Some(a)) if n > a => Err(Error::TooLarge(format!(
            "{what} needs about {} of memory; this machine has {} available",
            describe_bytes(n),
            describe_bytes(a)
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflowing_and_oversized_requests_are_refused_with_both_numbers() {
        let overflow = check_memory("10^30 points", bytes_for(usize::MAX, 16)).unwrap_err();
        assert!(overflow
            .to_string()
            .contains("more memory than can be counted"));
        if let Some(a) = available_memory() {
            let big = check_memory("a big set", Some(a.saturating_mul(2).max(1 << 50)));
            let text = big.unwrap_err().to_string();
            assert!(text.contains("a big set needs about") && text.contains("available"));
        }
        assert!(check_memory("a small set", Some(1024)).is_ok());
        assert_eq!(describe_bytes(1_200_000_000), "1.2 GB");
    }
}

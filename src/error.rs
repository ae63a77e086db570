//! The one error type of the library.
//!
//! Every variant says what went wrong in words a user can act on: the file, the line or row,
//! what was expected. [`Error::exit_code`] maps each to the command's exit status: 2 for bad
//! usage or bad input, 1 for a run that failed.

use std::path::PathBuf;

/// Convenience alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `v` for a message: as written when short (`0.3`, `1000`), in scientific notation otherwise
/// (`1e300`, not 301 digits; `1e-5`), always the shortest text that reads back as `v`.
pub fn number(v: f64) -> String {
    if v == 0.0 || (1e-4..1e12).contains(&v.abs()) {
        let plain = format!("{v}");
        if plain.len() <= 12 {
            return plain;
        }
    }
    format!("{v:e}")
}

/// A weight for a table: six decimals where that shows it (`-0.868848`), six significant
/// digits in scientific notation where it would not (`1.000000e30`, `1.000000e-30`).
pub fn weight_text(v: f64) -> String {
    if v == 0.0 || (1e-4..1e7).contains(&v.abs()) {
        format!("{v:.6}")
    } else {
        format!("{v:.6e}")
    }
}

/// Everything that can go wrong in downhill.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A data file holds something that is not what downhill expects.
    #[error("{path}: {message}")]
    BadData { path: PathBuf, message: String },

    /// A CSV cell could not be read as a finite number.
    #[error("{path}: line {line}, column {column}: {message}")]
    BadCell {
        path: PathBuf,
        line: u64,
        column: usize,
        message: String,
    },

    /// A model file is not a valid downhill model.
    #[error("{path}: {message}")]
    BadModel { path: PathBuf, message: String },

    /// A network or model description that does not hold together (outside any file).
    #[error("invalid network: {0}")]
    InvalidNetwork(String),

    /// The data's shape does not match the network.
    #[error("{context}: expected {expected}, got {got}")]
    ShapeMismatch {
        context: String,
        expected: String,
        got: String,
    },

    /// A command-line or API argument outside its allowed range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A request that needs more memory than the machine has (or than can be counted).
    #[error("too large: {0}")]
    TooLarge(String),

    /// A shape or size a compute device cannot take (the GPU kernels' limits, one storage
    /// binding too small): under `--device auto` the CPU path takes over.
    #[error("{0}")]
    Unsupported(String),

    /// The requested compute device is not available.
    #[error("{0}")]
    DeviceUnavailable(String),

    /// The GPU failed: a shader, pipeline or validation error, out of memory, a lost device.
    #[error("GPU: {0}")]
    Gpu(String),

    /// The processes of a data-parallel run (MPI) no longer agree.
    #[error("{0}")]
    Distributed(String),

    /// What one process of a data-parallel run met, told to every process, so that all of
    /// them stop with the same message and exit code.
    #[error("{message}")]
    OnEveryProcess { message: String, exit_code: i32 },

    /// `train --verify` found the GPU and CPU paths further apart than the tolerance.
    #[error("verification failed: {0}")]
    VerificationFailed(String),

    /// Gradient descent diverged: the loss became non-finite or exploded.
    #[error(
        "diverged at step {step}: the loss became {loss:e} (not finite, or a million times \
         the starting loss); try a smaller learning rate (the last weights before it were kept)"
    )]
    Diverged { step: usize, loss: f64 },
}

impl Error {
    /// The command's exit status for this error: 1 for a run that failed, 2 for bad usage or
    /// bad input.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::OnEveryProcess { exit_code, .. } => *exit_code,
            Error::Diverged { .. }
            | Error::Gpu(_)
            | Error::VerificationFailed(_)
            | Error::Distributed(_) => 1,
            _ => 2,
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A data-file error for `path`.
    pub fn bad_data(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::BadData {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A model-file error for `path`.
    pub fn bad_model(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::BadModel {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Characters of a bad cell or line quoted in an error message.
const QUOTED_CHARS: usize = 40;

/// Text from a file or the command line as an error message quotes it: control characters
/// escaped (a damaged file must not drive the terminal), and a long text by its start and
/// its length.
pub fn shown(text: &str) -> String {
    let count = text.chars().count();
    let start: String = text
        .chars()
        .take(QUOTED_CHARS)
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    if count > QUOTED_CHARS {
        format!("{start}... ({count} characters)")
    } else {
        start
    }
}

//! Writing output files without ever leaving a partial one: a regular file is written to a
//! temporary file next to it and renamed over it once everything was written (so a failure
//! never clobbers the previous file); several outputs of one command are all written before any
//! is renamed into place ([`Outputs`]). Character devices and FIFOs (`/dev/null`, a pipe) are
//! written straight into: renaming over them would replace the device node. Every other kind of
//! target (a directory, a socket, a block device) is refused.
//!
//! The temporary files in flight are listed in one place, so that an interrupted command can
//! remove them before it exits ([`remove_unfinished`]).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// The temporary files being written now, with the output each will become.
static UNFINISHED: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());

fn unfinished() -> std::sync::MutexGuard<'static, Vec<(PathBuf, PathBuf)>> {
    // A panic while the lock was held cannot leave the list inconsistent: keep using it.
    UNFINISHED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes every temporary file still being written (for an interrupt handler that is about
/// to exit); returns the outputs they were to become.
pub fn remove_unfinished() -> Vec<PathBuf> {
    let mut list = unfinished();
    let targets = list
        .iter()
        .filter(|(temp, _)| std::fs::remove_file(temp).is_ok())
        .map(|(_, target)| target.clone())
        .collect();
    list.clear();
    targets
}

/// What an output path points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// A regular file, or nothing yet: written to a temporary file and renamed into place.
    File,
    /// A character device or a FIFO: written straight into.
    Stream,
}

/// Checks that `path` can be an output, by the same rules the final write follows: a file
/// name (not a directory, not a path ending in `/`), in an existing directory that accepts a
/// new file, or an existing character device or FIFO. Nothing is left behind.
pub fn check_output(path: &Path) -> Result<OutputKind> {
    let kind = output_kind(path)?;
    if kind == OutputKind::File {
        // Create (and drop) a temporary file where the real one will be created.
        temp_file(path).map(drop)?;
    }
    Ok(kind)
}

/// Checks before a long run that `path` can be written (see [`check_output`]).
pub fn check_writable(path: &Path) -> Result<()> {
    check_output(path).map(drop)
}

fn not_a_file(path: &Path, why: &str) -> Error {
    Error::io(path, std::io::Error::other(why.to_string()))
}

fn output_kind(path: &Path) -> Result<OutputKind> {
    let text = path.as_os_str().as_encoded_bytes();
    let names_directory = text.is_empty()
        || text.ends_with(b"/")
        || text.ends_with(b"/.")
        || text.ends_with(b"/..")
        || text == b"."
        || text == b".."
        || path.file_name().is_none();
    if names_directory {
        return Err(not_a_file(
            path,
            "names a directory (or ends in '/'), expected a file path",
        ));
    }
    match std::fs::metadata(path) {
        Ok(meta) => {
            let kind = meta.file_type();
            if kind.is_file() {
                return Ok(OutputKind::File);
            }
            if kind.is_dir() {
                return Err(not_a_file(path, "is a directory, expected a file path"));
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::FileTypeExt;
                if kind.is_char_device() || kind.is_fifo() {
                    return Ok(OutputKind::Stream);
                }
            }
            Err(not_a_file(
                path,
                "is neither a regular file nor a character device or FIFO: refusing to write to it",
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(OutputKind::File),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Whether `path` is an existing character device or FIFO (written into, not replaced).
pub fn is_stream(path: &Path) -> bool {
    output_kind(path).is_ok_and(|kind| kind == OutputKind::Stream)
}

/// Whether `path` is a character device (`/dev/null`).
pub fn is_char_device(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if let Ok(meta) = std::fs::metadata(path) {
            return meta.file_type().is_char_device();
        }
    }
    false
}

/// The file a write to `path` ends in: a symbolic link is followed (its target is replaced,
/// not the link).
fn final_target(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    }
}

fn temp_file(path: &Path) -> Result<tempfile::NamedTempFile> {
    let target = final_target(path);
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".downhill-").suffix(".tmp");
    // A temporary file is private (0600) by default; the output is an ordinary file, readable as
    // the umask allows, like any file a command writes.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(&dir).map_err(|e| {
        // tempfile names its own random file ("at path .../.downhill-GZx0Bm.tmp"): the user
        // gave `path`, so say which directory could not take a new file, and why.
        let text = e.to_string();
        let why = text.split(" at path ").next().unwrap_or(&text);
        Error::io(
            path,
            std::io::Error::new(
                e.kind(),
                format!("cannot create a file in {}: {why}", dir.display()),
            ),
        )
    })
}

/// The same file, as far as the file system can tell: both exist and are one file, or both
/// resolve to one path.
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    resolved(a) == resolved(b)
}

/// `path` with its directory resolved (the file itself may not exist yet).
fn resolved(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(dir), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}

/// Refuses, before any work, two outputs that are one file and an output that is one of the
/// inputs (writing it would destroy what is being read). `outputs` and `inputs` are
/// `(flag, path)` pairs. A character device may take several outputs (`/dev/null` twice is
/// fine); a FIFO may not (two outputs would run together in the pipe).
pub fn check_distinct(outputs: &[(&str, &Path)], inputs: &[(&str, &Path)]) -> Result<()> {
    for (i, (flag, path)) in outputs.iter().enumerate() {
        if is_char_device(path) {
            continue;
        }
        for (other_flag, other) in &outputs[i + 1..] {
            if same_file(path, other) {
                return Err(Error::InvalidArgument(format!(
                    "{flag} and {other_flag} name the same file ({}): give each output its own path",
                    path.display()
                )));
            }
        }
        for (input_flag, input) in inputs {
            if same_file(path, input) {
                return Err(Error::InvalidArgument(format!(
                    "{flag} {} is the {input_flag} file: writing it would destroy the input; \
                     give another path",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

/// One temporary file written and waiting to be renamed into place.
struct Staged {
    temp: Option<tempfile::NamedTempFile>,
    target: PathBuf,
    /// The path as the user gave it, for messages.
    shown: PathBuf,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(temp) = &self.temp {
            let path = temp.path().to_path_buf();
            unfinished().retain(|(t, _)| *t != path);
        }
    }
}

/// The outputs of one command: each written in full first, then all renamed into place by
/// [`Outputs::commit`], so that no output is replaced unless every one could be written.
/// Dropped without a commit, it removes its temporary files and replaces nothing.
#[derive(Default)]
pub struct Outputs {
    staged: Vec<Staged>,
}

impl Outputs {
    /// No outputs yet.
    pub fn new() -> Self {
        Outputs::default()
    }

    /// Writes `path` through `fill`: into a temporary file next to it (renamed by
    /// [`Outputs::commit`]), or straight into a character device or FIFO.
    pub fn write<F>(&mut self, path: &Path, fill: F) -> Result<()>
    where
        F: FnOnce(&mut BufWriter<&mut File>) -> Result<()>,
    {
        if output_kind(path)? == OutputKind::Stream {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
            let mut writer = BufWriter::new(&mut file);
            fill(&mut writer)?;
            return writer.flush().map_err(|e| Error::io(path, e));
        }
        let mut temp = temp_file(path)?;
        unfinished().push((temp.path().to_path_buf(), path.to_path_buf()));
        let mut staged = Staged {
            temp: None,
            target: final_target(path),
            shown: path.to_path_buf(),
        };
        // From here on, dropping `staged` (on an error) forgets the temporary file, and
        // dropping `temp` removes it.
        let written = (|| {
            let mut writer = BufWriter::new(temp.as_file_mut());
            fill(&mut writer)?;
            writer.flush().map_err(|e| Error::io(path, e))?;
            drop(writer);
            temp.as_file().sync_all().map_err(|e| Error::io(path, e))
        })();
        staged.temp = Some(temp);
        written?;
        self.staged.push(staged);
        Ok(())
    }

    /// Renames every written output into place.
    pub fn commit(mut self) -> Result<()> {
        for mut staged in self.staged.drain(..) {
            let temp = staged.temp.take().expect("a staged output holds its file");
            let path = temp.path().to_path_buf();
            let result = temp.persist(&staged.target);
            unfinished().retain(|(t, _)| *t != path);
            result.map_err(|e| Error::io(&staged.shown, e.error))?;
        }
        Ok(())
    }
}

/// Writes one output through `fill` (see [`Outputs::write`]) and puts it in place.
pub fn write_atomically<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<&mut File>) -> Result<()>,
{
    let mut outputs = Outputs::new();
    outputs.write(path, fill)?;
    outputs.commit()
}

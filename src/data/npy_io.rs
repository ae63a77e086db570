//! `.npy` files: 2-D float32 or float64, shape `(rows, columns)` in either memory order.
//! Files downhill writes are in Fortran order, which is its own column layout, so loading
//! them needs no transpose.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use ndarray::{Array2, ArrayView2};
use ndarray_npy::{ReadNpyError, ReadNpyExt, WriteNpyExt};

use crate::error::{Error, Result};
use crate::output::write_atomically;

/// Reads a 2-D float32 or float64 `.npy` file into columns, shape `(columns, rows)`.
pub fn read(path: &Path) -> Result<Array2<f32>> {
    check_claimed_size(path)?;
    let rows_by_cols = match Array2::<f32>::read_npy(open(path)?) {
        Ok(a) => a,
        Err(ReadNpyError::WrongDescriptor(_)) => {
            let wide = Array2::<f64>::read_npy(open(path)?).map_err(|e| npy_error(path, e))?;
            narrow(path, wide)?
        }
        Err(e) => return Err(npy_error(path, e)),
    };
    let (rows, cols) = rows_by_cols.dim();
    if rows == 0 || cols == 0 {
        return Err(Error::bad_data(
            path,
            format!("holds no data (shape {rows} x {cols})"),
        ));
    }
    if let Some((index, value)) = rows_by_cols.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::bad_data(
            path,
            format!(
                "row {}, column {}: {value} is not a finite number",
                index.0 + 1,
                index.1 + 1
            ),
        ));
    }
    // Transposing a Fortran-order array is free; a C-order one is copied once.
    let columns = rows_by_cols.reversed_axes();
    Ok(if columns.is_standard_layout() {
        columns
    } else {
        columns.as_standard_layout().into_owned()
    })
}

/// Compares the size the header promises with the bytes the file holds, before anything is
/// allocated: a header claiming 10^12 values must be a clear error, not an attempt to
/// allocate terabytes. Headers this cannot make sense of are left to the full reader, which
/// reports what is wrong with them.
fn check_claimed_size(path: &Path) -> Result<()> {
    use std::io::Read;
    /// Longest header considered (real ones are a few hundred bytes).
    const MAX_HEADER: u64 = 1 << 20;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut head = Vec::new();
    file.take(12 + MAX_HEADER)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;
    if head.len() < 12 || &head[..6] != b"\x93NUMPY" {
        return Ok(());
    }
    let (header_len, header_start) = match head[6] {
        1 => (u64::from(u16::from_le_bytes([head[8], head[9]])), 10u64),
        2 | 3 => (
            u64::from(u32::from_le_bytes([head[8], head[9], head[10], head[11]])),
            12u64,
        ),
        _ => return Ok(()),
    };
    if header_len > MAX_HEADER || header_start + header_len > file_len {
        return Err(Error::bad_data(
            path,
            format!("the .npy header claims {header_len} bytes; the file is {file_len} bytes long"),
        ));
    }
    let header = &head[header_start as usize..(header_start + header_len) as usize];
    let header = String::from_utf8_lossy(header);
    // Bytes per value from the descriptor's size digits ('<f8' -> 8); at least 1 for any
    // type. The reader allocates by the shape before it looks at the type, so every type
    // is checked, not only the float ones.
    let item = header
        .split("'descr'")
        .nth(1)
        .and_then(|rest| rest.split('\'').nth(1))
        .map(|descr| descr.trim_start_matches(|c: char| !c.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u64>().ok())
        .unwrap_or(1)
        .max(1);
    let Some(shape) = header
        .split("'shape'")
        .nth(1)
        .and_then(|rest| rest.split_once('('))
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(inside, _)| inside)
    else {
        return Ok(());
    };
    let mut values: u64 = 1;
    for part in shape.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Ok(n) = part.parse::<u64>() else {
            return Ok(());
        };
        values = values.saturating_mul(n);
    }
    let data_bytes = file_len - header_start - header_len;
    if values.saturating_mul(item) > data_bytes {
        return Err(Error::bad_data(
            path,
            format!(
                "the .npy header promises shape ({shape}) = {values} values ({} bytes) but the \
                 file holds {data_bytes} bytes of data: truncated or damaged",
                values.saturating_mul(item)
            ),
        ));
    }
    Ok(())
}

fn open(path: &Path) -> Result<BufReader<File>> {
    File::open(path)
        .map(|f| BufReader::with_capacity(1 << 20, f))
        .map_err(|e| Error::io(path, e))
}

fn narrow(path: &Path, wide: Array2<f64>) -> Result<Array2<f32>> {
    if let Some((index, value)) = wide
        .indexed_iter()
        .find(|(_, v)| v.is_finite() && !(**v as f32).is_finite())
    {
        return Err(Error::bad_data(
            path,
            format!(
                "row {}, column {}: {value} is too large for single precision",
                index.0 + 1,
                index.1 + 1
            ),
        ));
    }
    // `mapv` keeps a contiguous array's memory order, so a Fortran-order file stays cheap
    // to transpose.
    Ok(wide.mapv(|v| v as f32))
}

fn npy_error(path: &Path, e: ReadNpyError) -> Error {
    let message = match e {
        ReadNpyError::Io(io) => return Error::io(path, io),
        ReadNpyError::WrongNdim(expected, got) => format!(
            "has {got} dimensions, expected {} (rows x columns)",
            expected.unwrap_or(2)
        ),
        ReadNpyError::WrongDescriptor(descr) => {
            format!("holds {descr}, expected float32 or float64 values")
        }
        ReadNpyError::MissingData => {
            "is truncated: the header promises more values than the file holds".into()
        }
        ReadNpyError::ExtraBytes(n) => format!("has {n} bytes after the data the header describes"),
        other => format!("is not a valid .npy file: {other}"),
    };
    Error::bad_data(path, message)
}

/// Writes columns `(columns, rows)` as a Fortran-order `(rows, columns)` float32 array.
pub fn write(path: &Path, columns: ArrayView2<f32>) -> Result<()> {
    write_atomically(path, |w| {
        columns
            .t()
            .write_npy(w)
            .map_err(|e| Error::io(path, std::io::Error::other(e)))
    })
}

//! `.npy` files: 2-D float32 or float64, shape `(rows, columns)` in either memory order.
//! Files downhill writes are in Fortran order, which is its own column layout, so loading
//! them needs no transpose.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use ndarray::{Array2, ArrayView2};
use ndarray_npy::{ReadNpyError, ReadNpyExt, WriteNpyExt};

use crate::error::{Error, Result};
use crate::output::write_atomically;

/// Longest header considered (real ones are a few hundred bytes).
const MAX_HEADER: u64 = 1 << 20;

/// Reads a 2-D float32 or float64 `.npy` file into columns, shape `(columns, rows)`. The file
/// is read once, front to back, so a pipe or a FIFO works as well as a file.
pub fn read(path: &Path) -> Result<Array2<f32>> {
    let mut file = open(path)?;
    let regular_len = std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    let header = read_header(path, &mut file)?;
    check_claimed_size(path, &header, regular_len)?;
    // The header as read, then the rest of the stream: the parser sees the whole file.
    let stream = std::io::Cursor::new(header.bytes.clone()).chain(file);
    let rows_by_cols = if header.wide {
        let wide = Array2::<f64>::read_npy(stream).map_err(|e| npy_error(path, e))?;
        narrow(path, wide)?
    } else {
        Array2::<f32>::read_npy(stream).map_err(|e| npy_error(path, e))?
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

/// The rows `share(rows)` of a `.npy` file of float32 or float64 values as columns
/// `(columns, share)`, and the file's rows. The header is read through a map of the file (its
/// checks and its layout are the parser's); the share's values are read from the file a block
/// at a time, so the process holds them once, and no page of another share (the file is
/// assumed not to change while it is read). A file the map cannot view (an unusual header,
/// big-endian values) is read whole and the share kept.
#[cfg(feature = "mpi")]
pub fn read_share(
    path: &Path,
    share: impl Fn(usize) -> std::ops::Range<usize>,
) -> Result<(Array2<f32>, usize)> {
    use ndarray_npy::ViewNpyExt;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the map is only read, and the file is not written by downhill while it is
    // mapped; one changed by another program meanwhile gives wrong values, as any reader would.
    let mapped = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    if let Ok(view) = ArrayView2::<f32>::view_npy(&mapped) {
        let part = checked_share(path, view.dim(), &share)?;
        let layout = share_io::Layout::of(&view, &mapped);
        let columns = read_blocks(path, &file, &layout, part, f32::from_ne_bytes, |v, _| Ok(v))?;
        return Ok((columns, view.nrows()));
    }
    if let Ok(view) = ArrayView2::<f64>::view_npy(&mapped) {
        let part = checked_share(path, view.dim(), &share)?;
        let layout = share_io::Layout::of(&view, &mapped);
        let narrowed = |values: Array2<f64>, first| {
            narrow(path, values.reversed_axes())
                .map(Array2::reversed_axes)
                .map_err(|e| renumber(e, first))
        };
        let columns = read_blocks(path, &file, &layout, part, f64::from_ne_bytes, narrowed)?;
        return Ok((columns, view.nrows()));
    }
    // Whatever the map cannot view is read as a whole (which names what is wrong with it).
    let columns = read(path)?;
    let rows = columns.ncols();
    let part = share(rows);
    Ok((columns.slice(ndarray::s![.., part]).to_owned(), rows))
}

/// Reading rows of a `.npy` file's values straight from the file, by offset.
#[cfg(feature = "mpi")]
mod share_io {
    use std::fs::File;
    use std::ops::Range;
    use std::os::unix::fs::FileExt;

    use ndarray::{Array2, ArrayView2};

    /// Rows read at a time: a few megabytes of values, whatever the share.
    const BLOCK_ROWS: usize = 1 << 18;

    /// The blocks of rows `rows` is read in.
    pub fn blocks(rows: Range<usize>) -> impl Iterator<Item = Range<usize>> {
        let end = rows.end;
        rows.step_by(BLOCK_ROWS)
            .map(move |start| start..(start + BLOCK_ROWS).min(end))
    }

    /// Where a file's values lie: from byte `data`, `rows x cols` of them, by column
    /// (Fortran order) or by row.
    pub struct Layout {
        data: u64,
        rows: usize,
        pub cols: usize,
        by_column: bool,
    }

    impl Layout {
        /// The layout of the values `view` sees in the map `mapped`.
        pub fn of<T>(view: &ArrayView2<T>, mapped: &[u8]) -> Layout {
            let (rows, cols) = view.dim();
            Layout {
                data: (view.as_ptr() as usize - mapped.as_ptr() as usize) as u64,
                rows,
                cols,
                by_column: view.t().is_standard_layout(),
            }
        }

        /// The byte offset of value `(row, col)` of `N` bytes.
        fn offset<const N: usize>(&self, row: usize, col: usize) -> u64 {
            let index = if self.by_column {
                col * self.rows + row
            } else {
                row * self.cols + col
            };
            self.data + (index * N) as u64
        }

        /// Rows `rows` of `file` as columns `(cols, rows)`, each value made from its `N`
        /// bytes by `decode` (in this machine's byte order: the view the layout came from
        /// checked that the file's is the same).
        pub fn read<T: Copy, const N: usize>(
            &self,
            file: &File,
            rows: Range<usize>,
            decode: fn([u8; N]) -> T,
        ) -> std::io::Result<Array2<T>> {
            let n = rows.len();
            let decoded = |bytes: &[u8], into: &mut Vec<T>| {
                into.extend(
                    bytes
                        .chunks_exact(N)
                        .map(|b| decode(b.try_into().expect("chunks of N bytes"))),
                );
            };
            let mut values = Vec::with_capacity(n * self.cols);
            if self.by_column {
                let mut bytes = vec![0u8; n * N];
                for col in 0..self.cols {
                    file.read_exact_at(&mut bytes, self.offset::<N>(rows.start, col))?;
                    decoded(&bytes, &mut values);
                }
                Ok(Array2::from_shape_vec((self.cols, n), values).expect("cols x n values"))
            } else {
                let mut bytes = vec![0u8; n * self.cols * N];
                file.read_exact_at(&mut bytes, self.offset::<N>(rows.start, 0))?;
                decoded(&bytes, &mut values);
                let by_row = Array2::from_shape_vec((n, self.cols), values).expect("n x cols");
                Ok(by_row.reversed_axes().as_standard_layout().into_owned())
            }
        }
    }
}

/// Rows `part` of `file` (laid out as `layout` says) as f32 columns `(cols, part)`, read a
/// block at a time: each value made from its `N` bytes by `decode`, each block checked for
/// values that are not finite and made f32 by `to_f32` (given the block's first row in the
/// file).
#[cfg(feature = "mpi")]
fn read_blocks<T, const N: usize>(
    path: &Path,
    file: &File,
    layout: &share_io::Layout,
    part: std::ops::Range<usize>,
    decode: fn([u8; N]) -> T,
    to_f32: impl Fn(Array2<T>, usize) -> Result<Array2<f32>>,
) -> Result<Array2<f32>>
where
    T: Copy + Into<f64> + std::fmt::Display,
{
    let mut columns = Array2::<f32>::zeros((layout.cols, part.len()));
    for block in share_io::blocks(part.clone()) {
        let values = layout
            .read(file, block.clone(), decode)
            .map_err(|e| Error::io(path, e))?;
        check_finite(path, values.t(), block.start)?;
        let at = block.start - part.start..block.end - part.start;
        columns
            .slice_mut(ndarray::s![.., at])
            .assign(&to_f32(values, block.start)?);
    }
    Ok(columns)
}

/// The share of a file of `(rows, cols)` values, refused when the file holds none.
#[cfg(feature = "mpi")]
fn checked_share(
    path: &Path,
    (rows, cols): (usize, usize),
    share: &impl Fn(usize) -> std::ops::Range<usize>,
) -> Result<std::ops::Range<usize>> {
    if rows == 0 || cols == 0 {
        return Err(Error::bad_data(
            path,
            format!("holds no data (shape {rows} x {cols})"),
        ));
    }
    Ok(share(rows))
}

/// Refuses a value that is not finite in rows numbered from `first` of the file.
#[cfg(feature = "mpi")]
fn check_finite<T: Copy + Into<f64> + std::fmt::Display>(
    path: &Path,
    rows: ArrayView2<T>,
    first: usize,
) -> Result<()> {
    match rows.indexed_iter().find(|(_, v)| !(**v).into().is_finite()) {
        Some(((row, column), value)) => Err(Error::bad_data(
            path,
            format!(
                "row {}, column {}: {value} is not a finite number",
                first + row + 1,
                column + 1
            ),
        )),
        None => Ok(()),
    }
}

/// `error` about a row numbered within a share, numbered within the file instead.
#[cfg(feature = "mpi")]
fn renumber(error: Error, first: usize) -> Error {
    match error {
        Error::BadData { path, message } => {
            let message = match message
                .strip_prefix("row ")
                .and_then(|rest| rest.split_once(','))
                .and_then(|(row, rest)| Some((row.parse::<usize>().ok()?, rest)))
            {
                Some((row, rest)) => format!("row {},{rest}", first + row),
                None => message,
            };
            Error::BadData { path, message }
        }
        other => other,
    }
}

/// The start of a `.npy` file: magic, version, header length and the header text.
struct Header {
    /// Everything up to the data, as read (a native-order descriptor rewritten as explicit
    /// little-endian on little-endian machines, which is what it means there).
    bytes: Vec<u8>,
    /// The header text.
    text: String,
    /// Whether the values are float64 (else float32, or something the parser will name).
    wide: bool,
}

fn read_header(path: &Path, file: &mut impl Read) -> Result<Header> {
    let mut bytes = Vec::new();
    let cut = |have: usize| {
        Error::bad_data(
            path,
            format!("is cut off inside its .npy header (the file has only {have} bytes)"),
        )
    };
    let mut fill = |bytes: &mut Vec<u8>, upto: usize| -> Result<()> {
        let want = upto - bytes.len();
        let got = Read::take(&mut *file, want as u64)
            .read_to_end(bytes)
            .map_err(|e| Error::io(path, e))?;
        if got < want {
            return Err(cut(bytes.len()));
        }
        Ok(())
    };
    fill(&mut bytes, 10)?;
    if &bytes[..6] != b"\x93NUMPY" {
        return Err(Error::bad_data(
            path,
            "is not a .npy file (it does not start with the .npy magic bytes)",
        ));
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (u64::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10usize),
        2 | 3 => {
            fill(&mut bytes, 12)?;
            (
                u64::from(u32::from_le_bytes([
                    bytes[8], bytes[9], bytes[10], bytes[11],
                ])),
                12usize,
            )
        }
        v => {
            return Err(Error::bad_data(
                path,
                format!(".npy format version {v} is not supported (1, 2 and 3 are)"),
            ))
        }
    };
    if header_len > MAX_HEADER {
        return Err(Error::bad_data(
            path,
            format!("the .npy header claims {header_len} bytes; real headers have a few hundred"),
        ));
    }
    fill(&mut bytes, header_start + header_len as usize)?;
    let mut text = String::from_utf8_lossy(&bytes[header_start..]).into_owned();
    if cfg!(target_endian = "little") {
        for native in ["'=f4'", "'=f8'"] {
            if text.contains(native) {
                text = text.replace(native, &native.replace('=', "<"));
            }
        }
        if text.len() == bytes.len() - header_start {
            bytes.truncate(header_start);
            bytes.extend_from_slice(text.as_bytes());
        }
    }
    let wide = descriptor(&text).is_some_and(|d| d.ends_with("f8"));
    Ok(Header { bytes, text, wide })
}

/// The `'descr'` value of a header, such as `<f4`.
fn descriptor(header: &str) -> Option<&str> {
    header
        .split("'descr'")
        .nth(1)
        .and_then(|rest| rest.split('\'').nth(1))
}

/// Compares the size the header promises with the bytes the file holds (a regular file) or the
/// memory available (a stream), before anything is allocated: a header claiming 10^12 values
/// must be a clear error, not an attempt to allocate terabytes. Headers this cannot make sense
/// of are left to the full reader, which reports what is wrong with them.
fn check_claimed_size(path: &Path, header: &Header, file_len: Option<u64>) -> Result<()> {
    // Bytes per value from the descriptor's size digits ('<f8' -> 8); at least 1 for any
    // type. The reader allocates by the shape before it looks at the type, so every type
    // is checked, not only the float ones.
    let item = descriptor(&header.text)
        .map(|descr| descr.trim_start_matches(|c: char| !c.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u64>().ok())
        .unwrap_or(1)
        .max(1);
    let Some(shape) = header
        .text
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
    let needed = values.saturating_mul(item);
    match file_len {
        Some(len) => {
            let data_bytes = len.saturating_sub(header.bytes.len() as u64);
            if needed > data_bytes {
                return Err(Error::bad_data(
                    path,
                    format!(
                        "the .npy header promises shape ({shape}) = {values} values ({needed} \
                         bytes) but the file holds {data_bytes} bytes of data: truncated or \
                         damaged"
                    ),
                ));
            }
            Ok(())
        }
        // A stream's length is not known before it is read: check the memory it would take.
        None => crate::limits::check_memory(
            &format!("{}: the .npy data of shape ({shape})", path.display()),
            Some(needed.saturating_mul(if item < 4 { 4 } else { 1 })),
        ),
    }
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
                "row {}, column {}: {} is too large for single precision",
                index.0 + 1,
                index.1 + 1,
                crate::error::number(*value)
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
        // The header parser's own message spans many lines: keep its first.
        other => {
            let text = other.to_string();
            let first = text.lines().next().unwrap_or("unreadable header");
            let escaped: String = first
                .chars()
                .flat_map(char::escape_default)
                .take(240)
                .collect();
            format!("is not a valid .npy file: {escaped}")
        }
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

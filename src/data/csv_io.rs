//! CSV files: a header row is optional (a first row none of whose cells is a number), every
//! other cell must be a finite number, every row must have the same number of cells.

use std::io::Read;
use std::path::Path;

use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::output::write_atomically;

/// The longest line accepted: far more than any row of numbers for a network (about 50,000
/// cells), small enough that a damaged file with one giant line is refused before it is held
/// in memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Reads a CSV file into columns, shape `(columns, rows)`.
pub fn read(path: &Path) -> Result<Array2<f32>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let limited = LineLimit {
        inner: LoneCarriageReturns {
            inner: std::io::BufReader::with_capacity(1 << 20, file),
            after_cr: false,
        },
        since_newline: 0,
        line: 1,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(limited);

    let mut columns: Vec<Vec<f32>> = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut first = true;
    loop {
        let more = reader
            .read_record(&mut record)
            .map_err(|e| csv_error(path, e))?;
        if !more {
            break;
        }
        let line = record.position().map_or(0, |p| p.line());
        if record.len() == 1 && record[0].is_empty() {
            continue; // a blank line
        }
        if first {
            first = false;
            if record.iter().all(|cell| cell.parse::<f64>().is_err()) {
                continue; // a header row
            }
        }
        if columns.is_empty() {
            columns = vec![Vec::new(); record.len()];
        }
        if record.len() != columns.len() {
            return Err(Error::BadCell {
                path: path.into(),
                line,
                column: record.len().min(columns.len()) + 1,
                message: format!(
                    "this row has {} cells, the rows before it have {}",
                    record.len(),
                    columns.len()
                ),
            });
        }
        for (c, cell) in record.iter().enumerate() {
            columns[c].push(parse_cell(path, line, c, cell)?);
        }
    }
    let rows = columns.first().map_or(0, Vec::len);
    if rows == 0 {
        return Err(Error::bad_data(path, "holds no data rows"));
    }
    let width = columns.len();
    let flat: Vec<f32> = columns.into_iter().flatten().collect();
    Ok(Array2::from_shape_vec((width, rows), flat).expect("every column has one value per row"))
}

/// A reader that turns every line ending into `\n`: old Mac files end lines with a lone `\r`,
/// which the CSV parser accepts but does not count, so line numbers (and the line-length
/// limit) would be wrong. `\r\n` becomes one `\n`.
struct LoneCarriageReturns<R> {
    inner: R,
    /// The last byte handed out was a `\r` turned into `\n`.
    after_cr: bool,
}

impl<R: Read> Read for LoneCarriageReturns<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.inner.read(buf)?;
            if n == 0 {
                return Ok(0);
            }
            let mut kept = 0;
            for i in 0..n {
                let byte = buf[i];
                if byte == b'\n' && self.after_cr {
                    self.after_cr = false;
                    continue;
                }
                self.after_cr = byte == b'\r';
                buf[kept] = if self.after_cr { b'\n' } else { byte };
                kept += 1;
            }
            // A read that was only the `\n` of a `\r\n` must not look like the end of the file.
            if kept > 0 {
                return Ok(kept);
            }
        }
    }
}

/// A reader that fails on a line longer than [`MAX_LINE_BYTES`].
struct LineLimit<R> {
    inner: R,
    since_newline: usize,
    line: u64,
}

impl<R: Read> Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for part in buf[..n].split_inclusive(|&b| b == b'\n') {
            let ends_line = part.last() == Some(&b'\n');
            self.since_newline += part.len() - usize::from(ends_line);
            if self.since_newline > MAX_LINE_BYTES {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "line {} is longer than {MAX_LINE_BYTES} bytes: not a table of numbers \
                         for a small network (damaged, or not a CSV file)",
                        self.line
                    ),
                ));
            }
            if ends_line {
                self.since_newline = 0;
                self.line += 1;
            }
        }
        Ok(n)
    }
}

fn parse_cell(path: &Path, line: u64, column: usize, cell: &str) -> Result<f32> {
    let bad = |message: String| Error::BadCell {
        path: path.into(),
        line,
        column: column + 1,
        message,
    };
    // Quote a long cell by its start only, control characters escaped.
    let shown = super::shown(cell);
    let original = cell;
    let cell = shown.as_str();
    let value: f64 = original
        .parse()
        .map_err(|_| bad(format!("'{cell}' is not a number")))?;
    if !value.is_finite() {
        return Err(bad(format!("'{cell}' is not a finite number")));
    }
    let single = value as f32;
    if !single.is_finite() {
        return Err(bad(format!(
            "'{cell}' is too large for single precision (at most about 3.4e38)"
        )));
    }
    Ok(single)
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    let line = e.position().map_or(0, |p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(path, io),
        csv::ErrorKind::Utf8 { err, .. } => Error::BadCell {
            path: path.into(),
            line,
            column: err.field() + 1,
            message: "the cell is not valid UTF-8 text".into(),
        },
        other => Error::bad_data(
            path,
            format!("line {line}: {}", super::shown(&format!("{other:?}"))),
        ),
    }
}

/// Writes columns `(columns, rows)` as CSV with a header `x0,..,y0,..`, atomically.
pub fn write(path: &Path, columns: ArrayView2<f32>, inputs: usize) -> Result<()> {
    let header: Vec<String> = (0..columns.nrows())
        .map(|c| {
            if c < inputs {
                format!("x{c}")
            } else {
                format!("y{}", c - inputs)
            }
        })
        .collect();
    write_table(path, &header, columns)
}

/// Writes columns `(columns, rows)` as CSV under the given header, atomically.
pub fn write_table(path: &Path, header: &[String], columns: ArrayView2<f32>) -> Result<()> {
    write_atomically(path, |w| {
        let mut writer = csv::Writer::from_writer(w);
        writer
            .write_record(header)
            .map_err(|e| Error::io(path, e.into()))?;
        let mut row = Vec::with_capacity(columns.nrows());
        for point in columns.columns() {
            row.clear();
            row.extend(point.iter().map(|v| v.to_string()));
            writer
                .write_record(&row)
                .map_err(|e| Error::io(path, e.into()))?;
        }
        writer.flush().map_err(|e| Error::io(path, e))
    })
}

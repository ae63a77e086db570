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
        inner: LoneCarriageReturns::new(std::io::BufReader::with_capacity(1 << 20, file)),
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
    // The first row, when it was read as a header (no number in it).
    let mut header: Option<String> = None;
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
                header = Some(record.iter().collect::<Vec<_>>().join(","));
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
        // A file of numbers separated by something else reads as one header-like row.
        let hint = match header {
            Some(row) if row.contains(';') || row.contains('\t') => {
                "; its one row has no comma-separated number: cells must be separated by commas"
            }
            _ => "",
        };
        return Err(Error::bad_data(path, format!("holds no data rows{hint}")));
    }
    let width = columns.len();
    let flat: Vec<f32> = columns.into_iter().flatten().collect();
    Ok(Array2::from_shape_vec((width, rows), flat).expect("every column has one value per row"))
}

/// A reader that turns every line ending into `\n` and every empty line into a line holding
/// one space. Old Mac files end lines with a lone `\r`, which the CSV parser accepts but does
/// not count, and the parser skips empty lines without counting them either: both would make
/// the line numbers in error messages (and the line-length limit) wrong. `\r\n` becomes one
/// `\n`; a line of one space reads as one empty cell, which the reader skips as a blank line.
struct LoneCarriageReturns<R> {
    inner: R,
    /// The last byte handed out was a `\r` turned into `\n`.
    after_cr: bool,
    /// The last byte handed out ended a line (true at the start: an empty first line counts).
    at_line_start: bool,
    /// Bytes transformed but not yet handed out.
    pending: Vec<u8>,
    /// Read position in `pending`.
    at: usize,
    /// Bytes as read, before the transformation.
    raw: Vec<u8>,
}

impl<R> LoneCarriageReturns<R> {
    fn new(inner: R) -> Self {
        LoneCarriageReturns {
            inner,
            after_cr: false,
            at_line_start: true,
            pending: Vec::new(),
            at: 0,
            raw: Vec::new(),
        }
    }
}

impl<R: Read> Read for LoneCarriageReturns<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.pending.len() {
            self.raw.resize(buf.len().max(1), 0);
            let n = self.inner.read(&mut self.raw)?;
            if n == 0 {
                return Ok(0);
            }
            self.pending.clear();
            self.at = 0;
            for &byte in &self.raw[..n] {
                if byte == b'\n' && self.after_cr {
                    self.after_cr = false;
                    continue;
                }
                self.after_cr = byte == b'\r';
                let byte = if self.after_cr { b'\n' } else { byte };
                if byte == b'\n' && self.at_line_start {
                    self.pending.push(b' ');
                }
                self.at_line_start = byte == b'\n';
                self.pending.push(byte);
            }
            // A read that was only the `\n` of a `\r\n` gives nothing yet: read on.
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
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
    let shown = crate::error::shown(cell);
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
            format!(
                "line {line}: {}",
                crate::error::shown(&format!("{other:?}"))
            ),
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

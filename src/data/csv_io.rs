//! CSV files: a header row is optional (a first row none of whose cells is a number), every
//! other cell must be a finite number, every row must have the same number of cells.

use std::path::Path;

use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::output::write_atomically;

/// Reads a CSV file into columns, shape `(columns, rows)`.
pub fn read(path: &Path) -> Result<Array2<f32>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(std::io::BufReader::with_capacity(1 << 20, file));

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

fn parse_cell(path: &Path, line: u64, column: usize, cell: &str) -> Result<f32> {
    let bad = |message: String| Error::BadCell {
        path: path.into(),
        line,
        column: column + 1,
        message,
    };
    let value: f64 = cell
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
        other => Error::bad_data(path, format!("line {line}: {other:?}")),
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

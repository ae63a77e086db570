//! Point sets: the [`Dataset`] type, CSV and `.npy` files, synthetic generation.
//!
//! A dataset is stored column by column (structure of arrays, f32): each input and each
//! target is one contiguous column. The CPU kernels and the GPU read whole columns, so a tile
//! of points is a handful of contiguous loads rather than a strided gather.

mod csv_io;
mod npy_io;
mod synthetic;

use std::path::Path;

use ndarray::{Array2, ArrayView1, ArrayView2, Axis};

use crate::error::{Error, Result};

pub use synthetic::{check_size, generate, generate_share};

/// Points with their targets, column by column.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Shape `(inputs + outputs, points)`: row `c` is column `c` of the data file.
    columns: Array2<f32>,
    inputs: usize,
}

impl Dataset {
    /// Wraps columns of shape `(inputs + outputs, points)`; the first `inputs` rows are inputs.
    pub fn from_columns(columns: Array2<f32>, inputs: usize) -> Result<Self> {
        let (cols, points) = columns.dim();
        if inputs == 0 || inputs >= cols {
            return Err(Error::InvalidArgument(format!(
                "a dataset needs at least one input and one target column ({cols} columns, {inputs} inputs)"
            )));
        }
        if points == 0 {
            return Err(Error::InvalidArgument(
                "a dataset needs at least one point".into(),
            ));
        }
        let columns = if columns.is_standard_layout() {
            columns
        } else {
            columns.as_standard_layout().into_owned()
        };
        Ok(Dataset { columns, inputs })
    }

    /// Holds out a seeded random `fraction` of the points: `(training, validation)`, each
    /// keeping the points' order. The same seed picks the same points on every machine.
    pub fn split(&self, fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let n = self.len();
        let held = (fraction * n as f64).round() as usize;
        if !(fraction > 0.0 && fraction < 1.0) || held == 0 || held >= n {
            return Err(Error::InvalidArgument(format!(
                "--validation {}: expected a fraction in (0, 1) that leaves at least one point \
                 on each side of {n} points",
                crate::error::number(fraction)
            )));
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        let (validation, training) = order.split_at_mut(held);
        let part = |indices: &mut [usize]| {
            indices.sort_unstable();
            Dataset::from_columns(self.columns.select(Axis(1), indices), self.inputs)
        };
        let validation = part(validation)?;
        Ok((part(training)?, validation))
    }

    /// The points `indices`, in that order: a batch of a shuffled epoch.
    pub fn gathered(&self, indices: &[u32]) -> Result<Dataset> {
        if indices.is_empty() {
            return Err(Error::InvalidArgument(
                "a dataset needs at least one point".into(),
            ));
        }
        let mut batch = Dataset {
            columns: Array2::zeros((self.columns.nrows(), indices.len())),
            inputs: self.inputs,
        };
        batch.fill_from(self, indices);
        Ok(batch)
    }

    /// Overwrites this dataset's points with `source`'s points `indices` (as many as this
    /// one holds), column by column.
    pub(crate) fn fill_from(&mut self, source: &Dataset, indices: &[u32]) {
        for (mut to, from) in self
            .columns
            .rows_mut()
            .into_iter()
            .zip(source.columns.rows())
        {
            let from = from
                .to_slice()
                .expect("columns are stored in standard layout");
            let to = to
                .as_slice_mut()
                .expect("columns are stored in standard layout");
            for (value, &i) in to.iter_mut().zip(indices) {
                *value = from[i as usize];
            }
        }
    }

    /// Builds a dataset from rows `[x..., y...]` (row-major), mainly for tests and examples.
    pub fn from_rows(rows: ArrayView2<f32>, inputs: usize) -> Result<Self> {
        Dataset::from_columns(rows.t().to_owned(), inputs)
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.columns.ncols()
    }

    /// Always false: a dataset holds at least one point.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of input columns.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Number of target columns.
    pub fn outputs(&self) -> usize {
        self.columns.nrows() - self.inputs
    }

    /// All columns, shape `(inputs + outputs, points)`.
    pub fn columns(&self) -> ArrayView2<'_, f32> {
        self.columns.view()
    }

    /// The input columns, shape `(inputs, points)`.
    pub fn input_columns(&self) -> ArrayView2<'_, f32> {
        self.columns.slice(ndarray::s![..self.inputs, ..])
    }

    /// The target columns, shape `(outputs, points)`.
    pub fn target_columns(&self) -> ArrayView2<'_, f32> {
        self.columns.slice(ndarray::s![self.inputs.., ..])
    }

    /// One column as a contiguous slice.
    pub fn column(&self, c: usize) -> &[f32] {
        self.columns
            .index_axis(Axis(0), c)
            .to_slice()
            .expect("columns are stored in standard layout")
    }

    /// Every column (inputs, then targets) as a contiguous slice.
    pub fn column_slices(&self) -> Vec<&[f32]> {
        row_slices(self.columns.view())
    }

    /// One point: `(inputs, targets)`.
    pub fn point(&self, i: usize) -> (Vec<f32>, Vec<f32>) {
        let col: ArrayView1<f32> = self.columns.column(i);
        let v = col.to_vec();
        let targets = v[self.inputs..].to_vec();
        (v[..self.inputs].to_vec(), targets)
    }

    /// Bytes one pass over the data reads (every value once, as f32).
    pub fn bytes(&self) -> usize {
        self.columns.len() * std::mem::size_of::<f32>()
    }

    /// Checks that the dataset fits a network with `inputs` inputs and `outputs` outputs.
    pub fn check_shape(&self, inputs: usize, outputs: usize, what: &str) -> Result<()> {
        if self.inputs != inputs || self.outputs() != outputs {
            return Err(Error::ShapeMismatch {
                context: what.into(),
                expected: format!(
                    "{} columns ({inputs} inputs + {outputs} targets) for this network",
                    inputs + outputs
                ),
                got: format!("{} columns", self.columns.nrows()),
            });
        }
        Ok(())
    }

    /// Writes the dataset to `.csv` or `.npy` (chosen by extension), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        match FileKind::of(path)? {
            FileKind::Csv => csv_io::write(path, self.columns.view(), self.inputs),
            FileKind::Npy => npy_io::write(path, self.columns.view()),
        }
    }
}

/// Every row of a standard-layout array as a contiguous slice (for an array of columns: every
/// column).
pub fn row_slices(rows: ArrayView2<'_, f32>) -> Vec<&[f32]> {
    (0..rows.nrows())
        .map(|r| {
            rows.index_axis_move(Axis(0), r)
                .to_slice()
                .expect("rows of a standard-layout array are contiguous")
        })
        .collect()
}

/// Writes predictions `(outputs, points)` to `.csv` (header `pred0,...`) or `.npy`,
/// atomically.
pub fn save_predictions(path: &Path, predictions: ArrayView2<f32>) -> Result<()> {
    match FileKind::of(path)? {
        FileKind::Csv => {
            let header: Vec<String> = (0..predictions.nrows())
                .map(|k| format!("pred{k}"))
                .collect();
            csv_io::write_table(path, &header, predictions)
        }
        FileKind::Npy => npy_io::write(path, predictions),
    }
}

/// A table of numbers read from a file, column by column, before it is split into inputs and
/// targets (which needs the network).
#[derive(Debug)]
pub struct Table {
    /// Shape `(columns, rows)`.
    pub columns: Array2<f32>,
}

impl Table {
    /// Reads a `.csv` or `.npy` file (chosen by extension), validating every value.
    pub fn load(path: &Path) -> Result<Self> {
        let columns = match FileKind::of(path)? {
            FileKind::Csv => csv_io::read(path)?,
            FileKind::Npy => npy_io::read(path)?,
        };
        Ok(Table { columns })
    }

    /// The rows `share(rows)` of a `.csv` or `.npy` file, and the file's rows: a `.npy` file
    /// is read at the share's offset (only the share's bytes are read into memory), a CSV file
    /// is read whole and the share kept. Each share's values are checked as [`Table::load`]
    /// checks the whole file's, naming rows by their place in the file.
    #[cfg(feature = "mpi")]
    pub fn load_share(
        path: &Path,
        share: impl Fn(usize) -> std::ops::Range<usize>,
    ) -> Result<(Self, usize)> {
        let (columns, rows) = match FileKind::of(path)? {
            FileKind::Csv => {
                let all = csv_io::read(path)?;
                let rows = all.ncols();
                let part = share(rows);
                (all.slice(ndarray::s![.., part]).to_owned(), rows)
            }
            FileKind::Npy => npy_io::read_share(path, share)?,
        };
        Ok((Table { columns }, rows))
    }

    /// Number of columns.
    pub fn width(&self) -> usize {
        self.columns.nrows()
    }

    /// Splits the table into a dataset for a network with `inputs` inputs and `outputs`
    /// outputs; the last `outputs` columns are the targets.
    pub fn into_dataset(self, path: &Path, inputs: usize, outputs: usize) -> Result<Dataset> {
        if self.width() != inputs + outputs {
            return Err(Error::bad_data(
                path,
                format!(
                    "has {} columns, but the network takes {inputs} inputs and gives {outputs} \
                     outputs, so {} columns were expected (inputs first, targets last)",
                    self.width(),
                    inputs + outputs
                ),
            ));
        }
        Dataset::from_columns(self.columns, inputs)
    }

    /// The input columns for prediction: the table holds either just the inputs or the inputs
    /// followed by targets (which are ignored).
    pub fn into_inputs(self, path: &Path, inputs: usize, outputs: usize) -> Result<Array2<f32>> {
        let width = self.width();
        if width != inputs && width != inputs + outputs {
            return Err(Error::bad_data(
                path,
                format!(
                    "has {width} columns, but the network takes {inputs} inputs: expected \
                     {inputs} columns (inputs) or {} (inputs and targets)",
                    inputs + outputs
                ),
            ));
        }
        let mut columns = self.columns;
        columns.slice_collapse(ndarray::s![..inputs, ..]);
        Ok(columns)
    }
}

enum FileKind {
    Csv,
    Npy,
}

impl FileKind {
    fn of(path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => Ok(FileKind::Csv),
            Some("npy") => Ok(FileKind::Npy),
            // A device or a pipe has no extension to go by: CSV, the text format.
            _ if crate::output::is_stream(path) => Ok(FileKind::Csv),
            _ => Err(Error::bad_data(
                path,
                "unknown file type: expected a name ending in .csv or .npy",
            )),
        }
    }
}

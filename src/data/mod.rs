//! Point sets: the [`Dataset`] type, CSV and `.npy` files, synthetic generation.
//!
//! A dataset is stored column by column (structure of arrays, f32): each input and each
//! target is one contiguous column. The CPU kernels and the GPU read whole columns, so a tile
//! of points is a handful of contiguous loads rather than a strided gather.
//!
//! A dataset may also borrow its columns from the caller ([`Points::from_views`]: the Python
//! package passes numpy's arrays in place). Borrowed columns may be strided (a C-ordered
//! matrix of points has each column strided by its width); [`Points::with_block`] hands the
//! kernels a block of such columns gathered into a small buffer that stays in cache, so the
//! data is still read from memory once per pass and never copied whole.

mod csv_io;
mod npy_io;
mod synthetic;

use std::cell::Cell;
use std::ops::Range;
use std::path::Path;

use ndarray::{concatenate, Array2, ArrayView1, ArrayView2, Axis, CowArray, Ix2};

use crate::error::{Error, Result};

pub use synthetic::{check_size, generate, generate_share};

/// Points with their targets, column by column, owned: read from a file or generated.
pub type Dataset = Points<'static>;

/// Points with their targets, column by column: owned (a [`Dataset`]), or borrowed for `'a`
/// from the caller's arrays ([`Points::from_views`]). Every engine takes either.
#[derive(Clone, Debug)]
pub struct Points<'a> {
    storage: Storage<'a>,
    inputs: usize,
}

#[derive(Clone, Debug)]
enum Storage<'a> {
    /// Shape `(inputs + outputs, points)`, standard layout: row `c` is column `c` of the data
    /// file.
    Owned(Array2<f32>),
    /// Shapes `(inputs, points)` and `(outputs, points)`, any strides.
    Borrowed {
        inputs: Strided<'a>,
        targets: Strided<'a>,
    },
}

/// A borrowed matrix of f32 given as its values and their layout: element `(r, c)` is
/// `values[r * strides.0 + c * strides.1]`. Held this way rather than as an `ArrayView2`,
/// which is invariant in its lifetime: a plain slice keeps a `&'a Points<'a>` coercible from
/// a longer-lived set, as the engines that hold one need.
#[derive(Clone, Copy, Debug)]
pub struct Strided<'a> {
    values: &'a [f32],
    dim: (usize, usize),
    strides: (usize, usize),
}

impl<'a> Strided<'a> {
    /// A matrix of shape `dim` laid out by `strides` (in elements) in `values`, or `None`
    /// where the layout reaches past `values`. Elements may share a value (a zero stride: a
    /// broadcast array).
    pub fn new(values: &'a [f32], dim: (usize, usize), strides: (usize, usize)) -> Option<Self> {
        use ndarray::ShapeBuilder;
        // An axis of one element has no stride to speak of (numpy gives it any): 1 lets a
        // single column be read as the rows of a table it is.
        let unit = |length: usize, stride: usize| if length <= 1 { 1 } else { stride };
        let strides = (unit(dim.0, strides.0), unit(dim.1, strides.1));
        ArrayView2::from_shape(dim.strides(strides), values).ok()?;
        Some(Strided {
            values,
            dim,
            strides,
        })
    }

    /// `view`'s values in place, if they are one block of memory with no negative stride.
    pub fn of_view(view: ArrayView2<'a, f32>) -> Option<Self> {
        let strides = view.strides();
        let strides = (
            usize::try_from(strides[0]).ok()?,
            usize::try_from(strides[1]).ok()?,
        );
        Strided::new(view.to_slice_memory_order()?, view.dim(), strides)
    }

    fn view(&self) -> ArrayView2<'_, f32> {
        use ndarray::ShapeBuilder;
        ArrayView2::from_shape(self.dim.strides(self.strides), self.values)
            .expect("the layout was checked when made")
    }

    /// Whether each column's points lie one after another (a Fortran-ordered matrix of
    /// points, or a single column).
    fn contiguous(&self) -> bool {
        self.strides.1 == 1 || self.dim.1 <= 1
    }

    /// Column `c`'s points `range`, in place.
    ///
    /// # Panics
    /// If the columns are not [`Strided::contiguous`].
    fn column(&self, c: usize, range: Range<usize>) -> &'a [f32] {
        assert!(self.contiguous(), "a column read in place is contiguous");
        if range.is_empty() {
            return &[];
        }
        &self.values[c * self.strides.0 + range.start..][..range.len()]
    }

    /// Points `range` of every column, gathered into `out` one column after another. The
    /// rows of a C-ordered matrix (or of a slice of one's columns) are read in order, each
    /// once, with the row width known to the compiler for the usual widths.
    fn gather(&self, range: Range<usize>, out: &mut [f32]) {
        let (width, (column_stride, point_stride)) = (self.dim.0, self.strides);
        if column_stride != 1 || range.is_empty() {
            return gather_strided(self, range, out);
        }
        let rows = &self.values[range.start * point_stride..];
        // Row widths and strides known to the compiler for the usual tables: less than half
        // the time of a stride read at run time (measured, 10M rows of 2 values).
        match (width, point_stride) {
            (1, 2) => gather_rows::<1, 2>(rows, out),
            (1, 3) => gather_rows::<1, 3>(rows, out),
            (1, 4) => gather_rows::<1, 4>(rows, out),
            (2, 2) => gather_rows::<2, 2>(rows, out),
            (2, 3) => gather_rows::<2, 3>(rows, out),
            (2, 4) => gather_rows::<2, 4>(rows, out),
            (3, 3) => gather_rows::<3, 3>(rows, out),
            (3, 4) => gather_rows::<3, 4>(rows, out),
            (4, 4) => gather_rows::<4, 4>(rows, out),
            _ => gather_strided(self, range, out),
        }
    }
}

/// The first `W` values of each row of `rows` (one row per point, `S` values apart, the last
/// one perhaps cut after its `W`) into `out` (`W` columns of `out.len() / W` points), column
/// after column.
fn gather_rows<const W: usize, const S: usize>(rows: &[f32], out: &mut [f32]) {
    let n = out.len() / W;
    let out = &mut out[..n * W];
    // Every row is whole where rows are packed (C order), else all but the last.
    let whole = if S == W { n } else { n.saturating_sub(1) };
    for (j, row) in rows[..whole * S].chunks_exact(S).enumerate() {
        for c in 0..W {
            out[c * n + j] = row[c];
        }
    }
    if whole < n {
        let row = &rows[whole * S..][..W];
        for c in 0..W {
            out[c * n + whole] = row[c];
        }
    }
}

/// Points `range` of any layout into `out`, column after column.
fn gather_strided(part: &Strided, range: Range<usize>, out: &mut [f32]) {
    let n = range.len();
    let (column_stride, point_stride) = part.strides;
    for (j, i) in range.enumerate() {
        for c in 0..part.dim.0 {
            out[c * n + j] = part.values[c * column_stride + i * point_stride];
        }
    }
}

impl PartialEq for Points<'_> {
    /// Equal points and targets, however each is stored.
    fn eq(&self, other: &Self) -> bool {
        self.inputs == other.inputs
            && self.input_columns() == other.input_columns()
            && self.target_columns() == other.target_columns()
    }
}

/// The most values a thread keeps in its gather buffer between blocks (4 MiB: a CPU block of
/// 16,384 points of 64 columns).
const KEEP_GATHERED: usize = 1 << 20;

thread_local! {
    /// The buffer [`Points::with_block`] gathers strided columns into, kept between blocks
    /// (taken while in use, so a nested call simply allocates its own).
    static GATHERED: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// `to[j] = value(indices[j])`: a column's values at `indices`.
fn gather_into<I: Copy>(to: &mut [f32], indices: &[I], value: impl Fn(I) -> f32) {
    for (to, &i) in to.iter_mut().zip(indices) {
        *to = value(i);
    }
}

/// Checks input columns of shape `inputs` against target columns of shape `targets`, each
/// `(columns, points)`.
fn check_points(inputs: (usize, usize), targets: (usize, usize)) -> Result<()> {
    let ((count, points), (outputs, rows)) = (inputs, targets);
    if points != rows {
        return Err(Error::InvalidArgument(format!(
            "{points} points but {rows} targets: expected one target per point"
        )));
    }
    check_counts(count, count + outputs, points)
}

fn check_counts(inputs: usize, columns: usize, points: usize) -> Result<()> {
    if inputs == 0 || inputs >= columns {
        return Err(Error::InvalidArgument(format!(
            "a dataset needs at least one input and one target column ({columns} columns, {inputs} inputs)"
        )));
    }
    if points == 0 {
        return Err(Error::InvalidArgument(
            "a dataset needs at least one point".into(),
        ));
    }
    Ok(())
}

impl Points<'static> {
    /// Wraps columns of shape `(inputs + outputs, points)`; the first `inputs` rows are inputs.
    pub fn from_columns(columns: Array2<f32>, inputs: usize) -> Result<Self> {
        let (cols, points) = columns.dim();
        check_counts(inputs, cols, points)?;
        let columns = if columns.is_standard_layout() {
            columns
        } else {
            columns.as_standard_layout().into_owned()
        };
        Ok(Points {
            storage: Storage::Owned(columns),
            inputs,
        })
    }

    /// Builds a dataset from rows `[x..., y...]` (row-major), mainly for tests and examples.
    pub fn from_rows(rows: ArrayView2<f32>, inputs: usize) -> Result<Self> {
        Dataset::from_columns(rows.t().to_owned(), inputs)
    }
}

impl<'a> Points<'a> {
    /// Input columns `(inputs, points)` and target columns `(outputs, points)`, borrowed
    /// without copying where each is one block of memory in either order (the columns of a
    /// Fortran-ordered matrix of points are read as they are, those of a C-ordered one a block
    /// at a time, see [`Points::with_block`]); other layouts are copied once.
    pub fn from_views(inputs: ArrayView2<'a, f32>, targets: ArrayView2<'a, f32>) -> Result<Self> {
        check_points(inputs.dim(), targets.dim())?;
        match (Strided::of_view(inputs), Strided::of_view(targets)) {
            (Some(inputs), Some(targets)) => Points::from_strided(inputs, targets),
            _ => Dataset::from_columns(
                concatenate(Axis(0), &[inputs, targets]).expect("as many points"),
                inputs.nrows(),
            ),
        }
    }

    /// Input columns `(inputs, points)` and target columns `(outputs, points)` of any layout,
    /// borrowed without copying: a slice of a wider matrix's columns, or every other row,
    /// is read in place too.
    pub fn from_strided(inputs: Strided<'a>, targets: Strided<'a>) -> Result<Self> {
        check_points(inputs.dim, targets.dim)?;
        Ok(Points {
            inputs: inputs.dim.0,
            storage: Storage::Borrowed { inputs, targets },
        })
    }
}

impl Points<'_> {
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
            self.gathered_at(indices, |i| i)
        };
        let validation = part(validation)?;
        Ok((part(training)?, validation))
    }

    /// The points `indices`, in that order: a batch of a shuffled epoch.
    pub fn gathered(&self, indices: &[u32]) -> Result<Dataset> {
        self.gathered_at(indices, |i| i as usize)
    }

    /// The points `at(indices[j])` for every `j`.
    fn gathered_at<I: Copy>(&self, indices: &[I], at: impl Fn(I) -> usize) -> Result<Dataset> {
        if indices.is_empty() {
            return Err(Error::InvalidArgument(
                "a dataset needs at least one point".into(),
            ));
        }
        let mut batch =
            Dataset::from_columns(Array2::zeros((self.width(), indices.len())), self.inputs)?;
        batch.fill_at(self, indices, at);
        Ok(batch)
    }

    /// Overwrites this dataset's points with `source`'s points `indices` (as many as this
    /// one holds), column by column.
    ///
    /// # Panics
    /// If this dataset borrows its columns (only an owned one is filled).
    pub(crate) fn fill_from(&mut self, source: &Points, indices: &[u32]) {
        self.fill_at(source, indices, |i| i as usize);
    }

    fn fill_at<I: Copy>(&mut self, source: &Points, indices: &[I], at: impl Fn(I) -> usize) {
        let Storage::Owned(columns) = &mut self.storage else {
            panic!("only an owned dataset is filled");
        };
        for (c, mut to) in columns.rows_mut().into_iter().enumerate() {
            let from = source.column_view(c);
            let to = to
                .as_slice_mut()
                .expect("owned columns are stored in standard layout");
            match from.as_slice() {
                Some(from) => gather_into(to, indices, |i| from[at(i)]),
                None => gather_into(to, indices, |i| from[at(i)]),
            }
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.input_columns().ncols()
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
        self.target_columns().nrows()
    }

    /// Number of columns, inputs and targets.
    pub fn width(&self) -> usize {
        self.inputs + self.outputs()
    }

    /// Whether the columns are borrowed from the caller rather than owned.
    pub fn is_borrowed(&self) -> bool {
        matches!(self.storage, Storage::Borrowed { .. })
    }

    /// All columns, shape `(inputs + outputs, points)`: a view of an owned dataset, a copy
    /// of a borrowed one (for saving and tests, never on a training path).
    pub fn columns(&self) -> CowArray<'_, f32, Ix2> {
        match &self.storage {
            Storage::Owned(columns) => columns.view().into(),
            Storage::Borrowed { inputs, targets } => {
                concatenate(Axis(0), &[inputs.view(), targets.view()])
                    .expect("inputs and targets have as many points")
                    .into()
            }
        }
    }

    /// The input columns, shape `(inputs, points)`.
    pub fn input_columns(&self) -> ArrayView2<'_, f32> {
        match &self.storage {
            Storage::Owned(columns) => columns.slice(ndarray::s![..self.inputs, ..]),
            Storage::Borrowed { inputs, .. } => inputs.view(),
        }
    }

    /// The target columns, shape `(outputs, points)`.
    pub fn target_columns(&self) -> ArrayView2<'_, f32> {
        match &self.storage {
            Storage::Owned(columns) => columns.slice(ndarray::s![self.inputs.., ..]),
            Storage::Borrowed { targets, .. } => targets.view(),
        }
    }

    /// Column `c` (inputs, then targets), perhaps strided.
    fn column_view(&self, c: usize) -> ArrayView1<'_, f32> {
        match c.checked_sub(self.inputs) {
            None => self.input_columns().index_axis_move(Axis(0), c),
            Some(k) => self.target_columns().index_axis_move(Axis(0), k),
        }
    }

    /// One column (inputs, then targets) as a contiguous slice.
    ///
    /// # Panics
    /// If the column is a borrowed, strided one (an owned dataset's never is); engines read
    /// any set through [`Points::with_block`].
    pub fn column(&self, c: usize) -> &[f32] {
        self.column_view(c)
            .to_slice()
            .expect("a contiguous column (an owned dataset's always is)")
    }

    /// Every column (inputs, then targets) as a contiguous slice.
    ///
    /// # Panics
    /// As [`Points::column`].
    pub fn column_slices(&self) -> Vec<&[f32]> {
        (0..self.width()).map(|c| self.column(c)).collect()
    }

    /// Every column as a contiguous slice, if every column is contiguous (an owned dataset's
    /// always are).
    pub fn contiguous_columns(&self) -> Option<Vec<&[f32]>> {
        (0..self.width())
            .map(|c| self.column_view(c).to_slice())
            .collect()
    }

    /// Runs `work` on points `range` of every column (inputs, then targets), each a
    /// contiguous slice of `range.len()` values: slices of the columns themselves where they
    /// are contiguous, else the block gathered into a buffer kept by this thread. Kernels take
    /// a dataset a block at a time through this, so that a borrowed, strided one is read in
    /// place, once, as an owned one is.
    ///
    /// # Panics
    /// If `range` reaches past the last point.
    pub fn with_block<R>(&self, range: Range<usize>, work: impl FnOnce(&[&[f32]]) -> R) -> R {
        assert!(range.end <= self.len(), "a block within the points");
        let Storage::Borrowed { inputs, targets } = &self.storage else {
            return self
                .contiguous_columns()
                .expect("owned columns are contiguous")
                .with_block(range, work);
        };
        let parts = [inputs, targets];
        let n = range.len();
        let mut buffer = GATHERED.take();
        let strided: usize = parts
            .iter()
            .filter(|part| !part.contiguous())
            .map(|part| part.dim.0)
            .sum();
        buffer.resize(strided * n, 0.0);
        let mut rest = &mut buffer[..];
        for part in parts.iter().filter(|part| !part.contiguous()) {
            let (this, tail) = rest.split_at_mut(part.dim.0 * n);
            part.gather(range.clone(), this);
            rest = tail;
        }
        let mut gathered = buffer.chunks_exact(n.max(1));
        let mut block: Vec<&[f32]> = Vec::with_capacity(self.width());
        for part in parts {
            for c in 0..part.dim.0 {
                block.push(match (part.contiguous(), n) {
                    (true, _) => part.column(c, range.clone()),
                    (false, 0) => &[],
                    (false, _) => gathered.next().expect("a gathered column per strided one"),
                });
            }
        }
        let result = work(&block);
        drop(block);
        // A GPU upload's pieces are large: a buffer that grew past a CPU block's needs is let
        // go rather than held by the thread.
        if buffer.capacity() <= KEEP_GATHERED {
            GATHERED.set(buffer);
        }
        result
    }

    /// One point: `(inputs, targets)`.
    pub fn point(&self, i: usize) -> (Vec<f32>, Vec<f32>) {
        (
            self.input_columns().column(i).to_vec(),
            self.target_columns().column(i).to_vec(),
        )
    }

    /// Bytes one pass over the data reads (every value once, as f32).
    pub fn bytes(&self) -> usize {
        self.width() * self.len() * std::mem::size_of::<f32>()
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
                got: format!(
                    "{} columns ({} inputs + {} targets)",
                    self.width(),
                    self.inputs,
                    self.outputs()
                ),
            });
        }
        Ok(())
    }

    /// Writes the dataset to `.csv` or `.npy` (chosen by extension), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let columns = self.columns();
        match FileKind::of(path)? {
            FileKind::Csv => csv_io::write(path, columns.view(), self.inputs),
            FileKind::Npy => npy_io::write(path, columns.view()),
        }
    }
}

/// Columns read a block of points at a time: a [`Dataset`], or plain contiguous columns.
pub trait ColumnBlocks {
    /// Number of columns.
    fn width(&self) -> usize;

    /// Runs `work` on points `range` of every column, each a contiguous slice.
    fn with_block<R>(&self, range: Range<usize>, work: impl FnOnce(&[&[f32]]) -> R) -> R;
}

impl ColumnBlocks for [&[f32]] {
    fn width(&self) -> usize {
        self.len()
    }

    fn with_block<R>(&self, range: Range<usize>, work: impl FnOnce(&[&[f32]]) -> R) -> R {
        let block: Vec<&[f32]> = self.iter().map(|c| &c[range.clone()]).collect();
        work(&block)
    }
}

impl ColumnBlocks for Points<'_> {
    fn width(&self) -> usize {
        Points::width(self)
    }

    fn with_block<R>(&self, range: Range<usize>, work: impl FnOnce(&[&[f32]]) -> R) -> R {
        Points::with_block(self, range, work)
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

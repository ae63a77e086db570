"""Arrays as the engine takes them: 2-D float32, read in place where they already are."""

import numpy as np


def as_points(values, name):
    """``values`` as a 2-D float32 array (points x columns).

    A float32 array is passed on as it is: the engine reads it in place, with no copy, in
    any layout with non-negative strides (C or Fortran order, a slice of a table's columns,
    every other row, a broadcast; a 1-D ``y`` becomes a one-column view of itself). A
    reversed or unaligned one is copied here, once. float64 and other dtypes are converted here, once,
    keeping their memory order, and the converted array is then read in place. Nothing may
    write to the array while the engine reads it (another thread, with the GIL released).
    """
    array = np.asarray(values)
    if array.dtype.kind not in "fiub":
        raise ValueError(f"{name}: expected numbers, got an array of dtype {array.dtype}")
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (points x columns), got {array.ndim}-D")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name}: holds no data (shape {array.shape[0]} x {array.shape[1]})")
    if array.dtype != np.float32:
        array = _to_float32(array, name)
    elif not array.flags.aligned or any(stride < 0 for stride in array.strides):
        # The engine reads neither an unaligned array nor a reversed one in place.
        array = array.copy(order="K")
    return array


def _to_float32(array, name):
    """``array`` as float32, or a ValueError naming the first value float32 cannot hold
    (rather than numpy's overflow warning and an inf)."""
    with np.errstate(over="raise"):
        try:
            return array.astype(np.float32)
        except FloatingPointError:
            pass
    limit = np.finfo(np.float32).max
    row, column = np.argwhere(np.isfinite(array) & (np.abs(array) > limit))[0]
    value = float(array[row, column])
    raise ValueError(f"{name}: row {row + 1}, column {column + 1}: {value:g} is beyond "
                     "float32's range (downhill computes in float32)")

"""Arrays as the engine takes them: 2-D float32, read in place where they already are."""

import numpy as np


def as_points(values, name):
    """``values`` as a 2-D float32 array (points x columns).

    A float32 array is passed on as it is: the engine reads it in place, with no copy, in
    any layout with non-negative strides (C or Fortran order, a slice of a table's columns,
    every other row, a broadcast; a 1-D ``y`` becomes a one-column view of itself), and
    copies a reversed one once. float64 and other dtypes are converted here, once,
    keeping their memory order, and the converted array is then read in place.
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
        array = array.astype(np.float32)
    return array

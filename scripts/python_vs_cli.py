#!/usr/bin/env python3
"""downhill from Python beside the command on one .npy file: time per full-batch step of
`MLPRegressor.fit` against `downhill train --data`, and the Python process's peak memory with
X and y in Fortran order, in C order, and as views of one C-ordered table (issue 16's targets; BENCHMARKS.md).

    downhill generate --points 1e7 --seed 2 --out p10m.npy
    python3 scripts/python_vs_cli.py --data p10m.npy --downhill target/release/downhill

Each Python measurement runs in a process of its own, so that its peak RSS is its own: the
interpreter with numpy and scikit-learn, X and y (read from the file into arrays of the wanted
order, held once), and whatever the fit adds (`fit_added_mb`). Needs the
package installed (`pip install ./python`) with scikit-learn.
"""

import argparse
import json
import subprocess
import sys

FIT = r"""
import json, resource, sys, time
import numpy as np
import downhill

def load(path, order):
    # X and y read from the file a piece at a time straight into arrays of the wanted memory
    # order, so that the process holds them once (np.load then a conversion would peak at
    # twice that).
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        (rows, width), fortran, dtype = read_header(f)
        assert dtype == np.float32, "a float32 file"
        start = f.tell()
        if order == "table":  # X and y: views of one C-ordered table, as np.loadtxt gives
            table = np.empty((rows, width), np.float32)
            X, y = table[:, :-1], table[:, -1]
        else:
            X = np.empty((rows, width - 1), np.float32, order=order)
            y = np.empty(rows, np.float32)
        piece = np.empty(1 << 20, np.float32)
        for c in range(width):
            column = X[:, c] if c < width - 1 else y
            for first in range(0, rows, len(piece)):
                n = min(len(piece), rows - first)
                if fortran:
                    f.seek(start + (c * rows + first) * 4)
                    f.readinto(memoryview(piece[:n]))
                    column[first:first + n] = piece[:n]
                else:
                    f.seek(start + first * width * 4)
                    block = np.fromfile(f, np.float32, n * width).reshape(n, width)
                    column[first:first + n] = block[:, c]
        return X, y

X, y = load(sys.argv[1], sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
steps = int(sys.argv[3])
est = downhill.MLPRegressor(hidden_layer_sizes=(2,), activation="relu", solver="sgd",
                            momentum=0.0, batch_size=len(X), learning_rate_init=0.3,
                            max_iter=steps, tol=0.0, random_state=0, device="cpu")
start = time.perf_counter()
est.fit(X, y)
wall = time.perf_counter() - start
print(json.dumps({
    "order": sys.argv[2],
    "ms_per_step": est.history_.seconds / est.history_.steps * 1e3,
    "ms_per_step_with_setup": wall / est.history_.steps * 1e3,
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "before_fit_mb": before / 1024,
    "fit_added_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024,
    "xy_mb": 4 * X.shape[0] * (X.shape[1] + 1) / 2**20,
}))
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help=".npy from `downhill generate` (2 inputs, 1 target)")
    p.add_argument("--downhill", default="downhill", help="the command, for its time per step")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    for _ in range(args.repeats):
        for order in ["F", "C", "table"]:
            out = subprocess.run([sys.executable, "-c", FIT, args.data, order, str(args.steps)],
                                 check=True, capture_output=True, text=True).stdout
            print("python", out.strip())
        out = subprocess.run([args.downhill, "train", "--data", args.data, "--layers", "2,2,1",
                              "--lr", "0.3", "--steps", str(args.steps), "--tol", "0",
                              "--device", "cpu", "--json"],
                             check=True, capture_output=True, text=True).stdout
        print("command", json.dumps({"ms_per_step": json.loads(out)["ms_per_step"]}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""scikit-learn's MLPRegressor beside downhill on the same data: the comparison issue 14 asks
for. Both train an 8-64-64-1 relu network with Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8) on
shuffled mini-batches of 200 for the same number of epochs, with no weight decay and no early
stopping; the script prints each one's time per epoch and final training MSE (over every
training point, computed the same way for both).

    downhill generate --layers 8,64,64,1 --points 1e5 --seed 3 --out points8.npy
    python3 scripts/sklearn_yardstick.py --data points8.npy --epochs 20 \\
        --downhill target/release/downhill

Needs numpy and scikit-learn (`pip install scikit-learn`). scikit-learn computes in float64
(its default) on one core for these sizes; downhill in float32. The two start from different
random weights (each its own initialisation), so their losses agree only as well as two
seeds of one method do.
"""

import argparse
import json
import subprocess
import sys
import time

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help=".npy from `downhill generate` (8 inputs, 1 target)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--downhill", default="target/release/downhill", help="the downhill binary")
    p.add_argument("--device", default="cpu", help="downhill's --device")
    args = p.parse_args()

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor
    import warnings

    table = np.load(args.data)
    x, y = table[:, :-1], table[:, -1]
    model = MLPRegressor(
        hidden_layer_sizes=(64, 64),
        solver="adam",
        batch_size=args.batch_size,
        alpha=0.0,
        learning_rate_init=1e-3,
        max_iter=args.epochs,
        tol=0.0,
        n_iter_no_change=args.epochs + 1,
        shuffle=True,
        random_state=args.seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(x, y)
        seconds = time.perf_counter() - start
    sk_mse = float(np.mean((model.predict(x) - y) ** 2))
    sk_epoch = seconds / model.n_iter_

    run = subprocess.run(
        [
            args.downhill, "train", "--data", args.data, "--layers", "8,64,64,1",
            "--optimizer", "adam", "--lr", "0.001", "--batch-size", str(args.batch_size),
            "--epochs", str(args.epochs), "--tol", "0", "--seed", str(args.seed),
            "--device", args.device, "--json",
        ],
        check=True, capture_output=True, text=True,
    )
    report = json.loads(run.stdout)
    dh_mse = report["final_loss"]
    dh_epoch = report["ms_per_step"] * report["steps_per_epoch"] / 1e3

    print(f"{len(y)} points, 8-64-64-1, adam, batches of {args.batch_size}, {args.epochs} epochs")
    print(f"scikit-learn {model.n_iter_} epochs: {sk_epoch * 1e3:9.2f} ms/epoch, final training MSE {sk_mse:.5e}")
    print(f"downhill ({report['device']}): {dh_epoch * 1e3:9.2f} ms/epoch, final training MSE {dh_mse:.5e}")
    print(f"MSE ratio downhill/scikit-learn {dh_mse / sk_mse:.3f}; downhill {sk_epoch / dh_epoch:.1f}x faster per epoch")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The course's own way, as a yardstick for downhill: full-batch gradient descent on the
mean squared error, vectorised with numpy, as a student of the lesson would write it.

It reads the same files downhill reads and writes (a .npy point set from `downhill generate`,
a model JSON as the starting weights), takes the same steps, and prints the time per step and
the final loss, so the two can be set side by side:

    downhill generate --points 1e7 --out points.npy
    downhill train --data points.npy --steps 0 --out start.json      # random starting weights
    python3 scripts/numpy_yardstick.py --data points.npy --init start.json --steps 10 --lr 0.01
    downhill train --data points.npy --init start.json --steps 10 --lr 0.01 --tol 0 --device cpu

Needs only numpy (`pip install numpy`). Computes in float32, like downhill.
"""

import argparse
import json
import sys
import time

import numpy as np


def load_model(path):
    """Layers as (W, b, activation), W shaped (nodes, inputs) as in downhill's JSON."""
    with open(path) as f:
        model = json.load(f)
    layers = []
    for layer in model["layers"]:
        w = np.array(layer["weights"], dtype=np.float32)
        b = layer.get("bias")
        b = np.zeros(w.shape[0], dtype=np.float32) if b is None else np.array(b, dtype=np.float32)
        layers.append((w, b, layer["activation"]))
    return layers


def random_model(widths, seed):
    """He-uniform weights, zero biases, relu hidden layers and an identity output."""
    rng = np.random.default_rng(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        limit = np.sqrt(6.0 / n_in)
        w = rng.uniform(-limit, limit, size=(n_out, n_in)).astype(np.float32)
        b = np.zeros(n_out, dtype=np.float32)
        layers.append((w, b, "relu" if i < len(widths) - 2 else "identity"))
    return layers


def step(layers, x, y, lr):
    """One gradient-descent step on the MSE; returns the loss before the step."""
    # Forward pass, keeping every layer's input and pre-activation for the backward pass.
    activations, pre = [x], []
    a = x
    for w, b, act in layers:
        z = a @ w.T + b
        pre.append(z)
        a = np.maximum(z, 0) if act == "relu" else z
        activations.append(a)
    error = a - y
    loss = np.mean(error**2)
    # Backward pass: the slope of the loss with respect to every weight.
    delta = 2.0 * error / error.size
    for i in reversed(range(len(layers))):
        w, b, act = layers[i]
        if act == "relu":
            delta = delta * (pre[i] > 0)
        grad_w = delta.T @ activations[i]
        grad_b = delta.sum(axis=0)
        if i > 0:
            delta = delta @ w
        layers[i] = (w - lr * grad_w, b - lr * grad_b, act)
    return float(loss)


def mse(layers, x, y):
    a = x
    for w, b, act in layers:
        z = a @ w.T + b
        a = np.maximum(z, 0) if act == "relu" else z
    return float(np.mean((a - y) ** 2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help=".npy file: inputs first, targets last")
    parser.add_argument("--init", help="starting weights (downhill model JSON)")
    parser.add_argument("--layers", default="2,2,1", help="widths when there is no --init")
    parser.add_argument("--outputs", type=int, default=1, help="target columns in the data")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    data = np.load(args.data)
    if data.ndim != 2 or data.shape[1] <= args.outputs:
        sys.exit(f"{args.data}: expected a 2-D array with more than {args.outputs} columns")
    data = data.astype(np.float32, copy=False)
    # Row-major copies, as a student's np.load of a CSV would give.
    x = np.ascontiguousarray(data[:, : -args.outputs])
    y = np.ascontiguousarray(data[:, -args.outputs :])
    if args.init:
        layers = load_model(args.init)
    else:
        layers = random_model([int(w) for w in args.layers.split(",")], args.seed)

    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step(layers, x, y, args.lr)
        times.append(time.perf_counter() - start)
    final = mse(layers, x, y)
    median_ms = float(np.median(times) * 1e3)
    widths = [layers[0][0].shape[1]] + [w.shape[0] for w, _, _ in layers]
    result = {
        "workload": "-".join(map(str, widths)),
        "points": int(x.shape[0]),
        "steps": args.steps,
        "ms_per_step_median": median_ms,
        "ms_per_step_min": float(np.min(times) * 1e3),
        "final_loss": final,
        "numpy": np.__version__,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"numpy {np.__version__}: {result['workload']} on {result['points']:,} points, "
            f"{median_ms:.1f} ms/step (median of {args.steps}), final mse {final:.6e}"
        )


if __name__ == "__main__":
    main()

"""The lesson's pictures, drawn with matplotlib from downhill's Python package.

    pip install ./python matplotlib
    python docs/lesson.py [out-dir]

Writes lesson_curve.png (the loss over one weight, with its slope), lesson_surface.png (the
loss over two weights, with the steps gradient descent takes over them) and lesson_loss.png
(the loss of a run, step by step), for the lesson's baseline 2-2-1 network on points from a
teacher network.
"""

import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import downhill  # noqa: E402

out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
out.mkdir(parents=True, exist_ok=True)

# The lesson's baseline network, and many points made by a teacher that differs from it only
# in its output weights (3 and -2 instead of 2 and -1): the loss is lowest there.
baseline = downhill.Model.from_layers([
    {"weights": [[1, 1], [-1, 1]], "activation": "identity"},
    {"weights": [[2, -1]], "activation": "identity"},
])
rng = np.random.default_rng(0)
X = rng.uniform(-1, 1, size=(10_000, 2)).astype(np.float32)
y = (3 * (X[:, 0] + X[:, 1]) - 2 * (X[:, 1] - X[:, 0])).astype(np.float32)

# The loss over one weight: a curve, and the slope where the network stands.
curve = downhill.landscape(baseline, X, y, ["l1.n0.w0"], ranges=[(-1, 7)], grid=81)
w, losses = curve["axes"][0], curve["losses"]
here, slope = curve["current"][0], curve["slope"][0]
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(w, losses, label="loss (MSE)")
ax.plot([here - 1, here + 1], [curve["current_loss"] - slope, curve["current_loss"] + slope],
        "--", label=f"slope {slope:.2f} at w = {here:g}")
ax.scatter([here], [curve["current_loss"]], color="C3", zorder=3)
ax.set(xlabel="output weight l1.n0.w0", ylabel="loss", title="The loss over one weight")
ax.legend()
fig.savefig(out / "lesson_curve.png", dpi=120, bbox_inches="tight")

# The loss over two weights, and the steps of gradient descent over just those two.
names = ["l1.n0.w0", "l1.n0.w1"]
surface = downhill.landscape(baseline, X, y, names, ranges=[(-1, 7), (-5, 3)], grid=81)
gx, gy = surface["axes"]
path = [surface["current"]]
model = baseline
for _ in range(15):
    slopes = model.gradient(X, y)
    layers = model.layers
    layers[1]["weights"][0] -= 0.1 * np.array([slopes[n] for n in names])
    model = downhill.Model.from_layers(layers)
    path.append(list(layers[1]["weights"][0]))
path = np.array(path)
fig, ax = plt.subplots(figsize=(6, 5))
contours = ax.contourf(gx, gy, np.log10(surface["losses"] + 1e-9), levels=30, cmap="viridis")
fig.colorbar(contours, label="log10 loss")
ax.plot(path[:, 0], path[:, 1], "o-", color="white", markersize=3, label="steps, rate 0.1")
ax.set(xlabel=names[0], ylabel=names[1], title="The loss over two weights, and the way down")
ax.legend()
fig.savefig(out / "lesson_surface.png", dpi=120, bbox_inches="tight")

# Training every weight: the loss step by step.
history, trained = downhill.train(X, y, init=baseline, steps=60, learning_rate=0.05)
fig, ax = plt.subplots(figsize=(6, 4))
ax.semilogy(range(1, len(history.loss) + 1), history.loss)
ax.set(xlabel="step", ylabel="loss (MSE)", title="Gradient descent, learning rate 0.05")
fig.savefig(out / "lesson_loss.png", dpi=120, bbox_inches="tight")
print(f"wrote lesson_curve.png, lesson_surface.png and lesson_loss.png to {out}; "
      f"the loss fell from {history.loss[0]:.3g} to {history.final_loss:.3g}")

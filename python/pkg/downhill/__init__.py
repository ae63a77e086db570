"""downhill from Python: training small dense networks by gradient descent on the mean
squared error, on the GPU (WGSL via wgpu) or the CPU, with the engine of the ``downhill``
command.

- ``downhill.MLPRegressor``: scikit-learn's estimator, on downhill's engine.
- ``downhill.train(X, y, ...)`` -> ``(history, model)``; ``model.predict``, ``model.loss``,
  ``model.gradient``, ``model.save``; ``downhill.load(path)``.
- ``downhill.landscape(model, X, y, weights=[...])``: the loss over one or two weights.
- ``downhill.devices()``: the GPU adapters found.
"""

import os as _os


def _quiet_wayland_probe():
    # Mesa's Vulkan drivers look for a Wayland compositor when a GPU instance is made, and
    # without a usable XDG_RUNTIME_DIR libwayland prints "error: XDG_RUNTIME_DIR is invalid or
    # not set in the environment." to stderr, which reads as a failure. Without that directory
    # no compositor can be reached anyway (unless WAYLAND_DISPLAY is an absolute path); a
    # display path that does not exist makes the probe fail quietly. As the command does.
    runtime_dir = _os.environ.get("XDG_RUNTIME_DIR", "")
    display = _os.environ.get("WAYLAND_DISPLAY", "")
    if not (runtime_dir and _os.path.isdir(runtime_dir)) and not _os.path.isabs(display):
        _os.environ["WAYLAND_DISPLAY"] = "/nonexistent/downhill-without-wayland"


_quiet_wayland_probe()

from .estimator import MLPRegressor  # noqa: E402
from .model import Model, load  # noqa: E402
from .training import DivergedError, History, devices, landscape, train  # noqa: E402

__all__ = [
    "DivergedError",
    "History",
    "MLPRegressor",
    "Model",
    "devices",
    "landscape",
    "load",
    "train",
]

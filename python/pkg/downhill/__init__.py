"""downhill from Python: training small dense networks by gradient descent on the mean
squared error, on the GPU (WGSL via wgpu) or the CPU, with the engine of the ``downhill``
command.

- ``downhill.MLPRegressor``: scikit-learn's estimator, on downhill's engine.
- ``downhill.train(X, y, ...)`` -> ``(history, model)``; ``model.predict``, ``model.loss``,
  ``model.gradient``, ``model.save``; ``downhill.load(path)``.
- ``downhill.landscape(model, X, y, weights=[...])``: the loss over one or two weights.
- ``downhill.devices()``: the GPU adapters found.
"""

from .estimator import MLPRegressor
from .model import Model, load
from .training import DivergedError, History, devices, landscape, train

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

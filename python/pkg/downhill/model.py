"""A trained network: its weights in the CLI's JSON model format."""

import json

import numpy as np

from . import _core
from ._arrays import as_points


class Model:
    """A dense network's weights, as ``downhill train --out`` writes them.

    Pickles as its JSON text; ``save`` writes a file the command reads
    (``downhill eval --model``), and ``downhill.load`` reads one it wrote.
    """

    def __init__(self, json_text):
        self._json = _core.check_model(
            json_text if isinstance(json_text, str) else json.dumps(json_text)
        )

    @classmethod
    def from_layers(cls, layers):
        """A model from its layers: dicts with ``weights`` (nodes x inputs), ``bias``
        (optional) and ``activation`` (``identity``, ``relu``, ``tanh`` or ``sigmoid``)."""
        return cls(
            {
                "format": "downhill-model",
                "version": 1,
                "layers": [
                    {
                        "activation": layer.get("activation", "identity"),
                        "weights": np.asarray(layer["weights"], dtype=float).tolist(),
                        **(
                            {"bias": np.asarray(layer["bias"], dtype=float).tolist()}
                            if layer.get("bias") is not None
                            else {}
                        ),
                    }
                    for layer in layers
                ],
            }
        )

    def to_json(self):
        """The model as the CLI's JSON text."""
        return self._json

    @property
    def layers(self):
        """Each layer: ``weights`` (nodes x inputs), ``bias`` (or None) and ``activation``."""
        return [
            {
                "weights": np.asarray(layer["weights"], dtype=float),
                "bias": None if layer.get("bias") is None else np.asarray(layer["bias"], dtype=float),
                "activation": layer["activation"],
            }
            for layer in json.loads(self._json)["layers"]
        ]

    @property
    def weight_names(self):
        """The weights' names in their flat order: ``l0.n0.w0`` is layer 0, node 0, input 0;
        ``l0.n0.b`` its bias."""
        return _core.weight_names(self._json)

    def predict(self, X, device="auto"):
        """The network's outputs for ``X`` (points x inputs): points x outputs, float32."""
        return _core.predict(self._json, as_points(X, "X"), device)

    def _evaluate(self, X, y, device):
        return _core.evaluate(self._json, as_points(X, "X"), as_points(y, "y"), device)

    def loss(self, X, y, device="auto"):
        """The mean squared error over the points (the mean over points and outputs)."""
        return self._evaluate(X, y, device)["mse"]

    def gradient(self, X, y, device="auto"):
        """The slope of the MSE along every weight: a dict from weight name to slope, as
        ``downhill eval --json`` prints it."""
        return dict(self._evaluate(X, y, device)["gradient"])

    def save(self, path):
        """Writes the model to ``path`` in the CLI's format (atomically)."""
        _core.save_model(self._json, str(path))

    def __getstate__(self):
        return {"json": self._json}

    def __setstate__(self, state):
        self._json = _core.check_model(state["json"])

    def __eq__(self, other):
        return isinstance(other, Model) and json.loads(self._json) == json.loads(other._json)

    def __hash__(self):
        return hash(self._json)

    def __repr__(self):
        widths = [len(self.layers[0]["weights"][0])] + [len(l["weights"]) for l in self.layers]
        return f"Model({'-'.join(map(str, widths))})"


def load(path):
    """The model in a file ``downhill train --out`` (or ``Model.save``) wrote."""
    return Model(_core.load_model(str(path)))

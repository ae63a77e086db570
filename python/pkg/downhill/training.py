"""The lesson's functions on numpy arrays: train, landscape, devices."""

import numpy as np

from . import _core
from ._arrays import as_points
from .model import Model


class DivergedError(RuntimeError):
    """The loss blew up (became infinite or NaN, or a million times its start).

    ``model`` holds the last weights whose loss was finite, ``history`` the run so far.
    """

    def __init__(self, message, model, history):
        super().__init__(message)
        self.model = model
        self.history = history


class History(dict):
    """How a run went: ``loss`` (each step's loss, before its update; with mini-batches the
    batch's), ``epoch_loss`` (with mini-batches: each epoch's mean batch loss),
    ``validation_loss`` (after each epoch, with a validation set), ``steps``, ``epochs``,
    ``final_loss`` (over every training point, at the weights returned), ``seconds`` (spent
    in the steps), ``stopped``
    (``max_steps``, ``flat``, ``early``, ``interrupted``, ...), ``best_epoch`` and ``device``.
    """

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _whole(value, name, least):
    """``value`` as an int of at least ``least``, or a ValueError naming ``name``."""
    if isinstance(value, bool) or int(value) != value or value < least:
        raise ValueError(f"{name}={value!r}: expected a whole number of at least {least}")
    return int(value)


def held_out(points, fraction):
    """How many of ``points`` a validation ``fraction`` holds out: rounded half up, as the
    engine rounds it."""
    return int(np.floor(fraction * points + 0.5))


def _check_split(points, validation_fraction, batch_size):
    """The held-out part and the batches fit ``points`` points: the engine's own checks,
    named by this function's arguments rather than the command's options."""
    training = points
    if validation_fraction is not None:
        held = held_out(points, validation_fraction)
        if not 0 < validation_fraction < 1 or held == 0 or held >= points:
            raise ValueError(
                f"validation_fraction={validation_fraction!r}: expected a fraction in (0, 1) "
                f"that leaves at least one point on each side of {points} points")
        training -= held
    if batch_size is not None and batch_size > training:
        raise ValueError(f"batch_size={batch_size!r}: expected a number of points from 1 to "
                         f"the {training} training points")


def _run(X, y, *, hidden_layer_sizes, activation, optimizer, learning_rate, epochs,
         batch_size, momentum, beta_1, beta_2, epsilon, weight_decay, tol, seed, device,
         validation_fraction, patience, init, verify, restore_best=False):
    epochs = _whole(epochs, "steps", 0)
    seed = _whole(seed, "seed", 0)
    hidden_layer_sizes = [_whole(h, "hidden_layer_sizes", 1) for h in hidden_layer_sizes]
    if batch_size is not None:
        batch_size = _whole(batch_size, "batch_size", 1)
    if patience is not None:
        patience = _whole(patience, "patience", 1)
        if validation_fraction is None:
            raise ValueError("patience counts epochs without a lower validation loss: it "
                             "needs validation_fraction")
    X, y = as_points(X, "X"), as_points(y, "y")
    _check_split(len(X), validation_fraction, batch_size)
    result = _core.train(
        X,
        y,
        hidden=[int(h) for h in hidden_layer_sizes],
        activation=activation,
        optimizer=optimizer,
        learning_rate=float(learning_rate),
        epochs=int(epochs),
        batch_size=None if batch_size is None else int(batch_size),
        momentum=float(momentum),
        beta1=float(beta_1),
        beta2=float(beta_2),
        eps=float(epsilon),
        weight_decay=float(weight_decay),
        tol=float(tol),
        seed=int(seed),
        device=device,
        validation_fraction=None if validation_fraction is None else float(validation_fraction),
        patience=None if patience is None else int(patience),
        init=None if init is None else init.to_json(),
        verify=bool(verify),
    )
    per_epoch = max(result["steps_per_epoch"], 1)
    history = History(
        loss=list(result["step_losses"]),
        epoch_loss=result["epoch_losses"],
        validation_loss=list(result["validation_losses"]),
        steps=result["steps"],
        epochs=-(-result["steps"] // per_epoch),
        final_loss=result["final_loss"],
        seconds=result["seconds"],
        stopped="interrupted" if result["interrupted"] else result["stopped"],
        best_epoch=result["best_epoch"],
        device=result["device"],
        held_out_variance=result["held_out_variance"],
    )
    model = Model(result["model"])
    if restore_best and result["best_model"] is not None and result["stopped"] != "diverged":
        # scikit-learn's early stopping: the weights of the lowest held-out loss, however
        # the run ended.
        model = Model(result["best_model"])
    if result["interrupt"] is not None:
        # Raised again by the caller once it has kept the weights reached.
        return history, model, result["interrupt"]
    if result["engine_error"]:
        raise RuntimeError(result["engine_error"])
    if result["verification"]:
        raise RuntimeError(f"verification failed: {result['verification']}")
    if result["stopped"] == "diverged":
        raise DivergedError(
            f"the loss diverged after {result['steps']} steps (learning rate "
            f"{learning_rate}): try a smaller learning rate; .model holds the last finite "
            "weights",
            model,
            history,
        )
    return history, model, None


def train(X, y, *, hidden_layer_sizes=(2,), activation="relu", optimizer="gd",
          learning_rate=0.1, steps=100, batch_size=None, momentum=0.9, beta_1=0.9,
          beta_2=0.999, epsilon=1e-8, weight_decay=0.0, tol=0.0, seed=0, device="auto",
          validation_fraction=None, patience=None, init=None, verify=False):
    """Trains a dense network on ``X`` (points x inputs) and ``y`` (points, or points x
    outputs) by gradient descent on the mean squared error, with ``downhill train``'s engine.

    ``optimizer`` is ``gd`` (the lesson's step), ``momentum``, ``nesterov`` or ``adam``;
    ``steps`` counts epochs when ``batch_size`` is set (one step per batch), steps at full
    batch. ``init`` continues from a ``Model`` (its shape and activations, not
    ``hidden_layer_sizes`` and ``activation``). ``tol`` stops a full-batch run once the
    gradient's norm falls below it. The engine is the command's; the defaults here are the
    lesson's small ones (rate 0.1, 100 steps, seed 0, no flat stop), not the command's.
    Returns ``(history, model)``.

    Ctrl-C stops after the steps in flight: the weights reached are kept in the exception's
    ``model`` attribute and KeyboardInterrupt is raised again. A diverged run raises
    ``DivergedError`` with the last finite weights.
    """
    history, model, interrupt = _run(
        X, y, hidden_layer_sizes=hidden_layer_sizes, activation=activation,
        optimizer=optimizer, learning_rate=learning_rate, epochs=steps,
        batch_size=batch_size, momentum=momentum, beta_1=beta_1, beta_2=beta_2,
        epsilon=epsilon, weight_decay=weight_decay, tol=tol, seed=seed, device=device,
        validation_fraction=validation_fraction, patience=patience, init=init,
        verify=verify,
    )
    if interrupt is not None:
        interrupt.model, interrupt.history = model, history
        raise interrupt
    return history, model


def landscape(model, X, y, weights, *, ranges=None, grid=41, device="auto"):
    """The loss (MSE) over a grid of one or two of ``model``'s weights, every other weight
    held: the lesson's curve and surface.

    ``weights`` names them (``["l1.n0.w0"]``; ``model.weight_names`` lists them);
    ``ranges`` gives ``(from, to)`` for each (default: the weight's value +- max(1, |value|)).
    Returns a dict: ``axes`` (each weight's grid values), ``losses`` (``(grid,)`` for one
    weight, ``(grid, grid)`` for two, indexed ``[y, x]``), ``current`` (the model's values of
    the weights), ``current_loss`` and ``slope`` (of the loss along each weight there).
    """
    if isinstance(weights, str):
        weights = [weights]
    ranges = list(ranges) if ranges is not None else [None] * len(weights)
    return _core.landscape_of(
        model.to_json(), as_points(X, "X"), as_points(y, "y"), list(weights),
        [None if r is None else (float(r[0]), float(r[1])) for r in ranges], int(grid),
        device,
    )


def devices():
    """The GPU adapters found: dicts with ``name``, ``backend``, ``device_type`` and
    ``software`` (a software adapter such as lavapipe is slower than the CPU path, so
    ``device="auto"`` passes it over)."""
    return list(_core.devices())

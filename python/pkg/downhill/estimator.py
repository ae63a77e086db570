"""``MLPRegressor``: scikit-learn's estimator, on downhill's engine."""

import numpy as np
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def validate_data(estimator, X, y="no_validation", reset=True, **kwargs):
        return estimator._validate_data(X, y, reset=reset, **kwargs)

from .training import _run, held_out

_ACTIVATIONS = {"identity": "identity", "relu": "relu", "tanh": "tanh", "logistic": "sigmoid"}


class MLPRegressor(MultiOutputMixin, RegressorMixin, BaseEstimator):
    """A dense network trained on the mean squared error, as scikit-learn's
    ``sklearn.neural_network.MLPRegressor``, on downhill's CPU or GPU engine.

    The parameters are scikit-learn's, with the same meaning, except where said:

    hidden_layer_sizes : tuple of int, default (100,)
    activation : {"identity", "logistic", "tanh", "relu"}, default "relu"
        The hidden layers' activation; the output layer is linear.
    solver : {"sgd", "adam"}, default "adam"
        ``sgd`` with ``momentum`` 0 is plain gradient descent, with ``momentum`` > 0 heavy
        ball (``nesterovs_momentum`` for Nesterov's), as PyTorch's SGD. ``lbfgs`` is not
        taken.
    alpha : float, default 0.0001
        **Differs:** weight decay as PyTorch's (``alpha * w`` added to each weight's
        gradient, biases included), not scikit-learn's L2 penalty scaled by the batch.
    batch_size : int, "auto" or None, default "auto"
        Points per step; "auto" is ``min(200, n_samples)``; None (downhill's own) is one
        step per epoch over every point (full-batch descent).
    learning_rate_init : float, default 0.001
        The (constant) learning rate.
    max_iter : int, default 200
        Epochs (passes over the points).
    momentum, nesterovs_momentum, beta_1, beta_2, epsilon : as scikit-learn's.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the points and stop after ``n_iter_no_change``
        epochs without a lower validation loss. However the run ends (unless it diverges),
        the fitted weights are those of the lowest validation loss, as scikit-learn's.
    validation_fraction : float, default 0.1
    n_iter_no_change : int, default 10
    tol : float, default 1e-4
        **Differs:** when one batch holds every training point (``batch_size=None``, or a
        batch size, "auto" included, at least the number of points) training stops once the
        gradient's norm falls below ``tol``; with mini-batches it does not apply
        (scikit-learn's loss-improvement rule is not used: ``early_stopping`` is the way to
        stop early).
    random_state : int or None, default None
        Seeds the initial weights, the batches and the validation split.
    device : {"auto", "cpu", "gpu"}, default "auto"
        downhill's own: "auto" is a hardware GPU where there is one, else the CPU.
    verify : bool, default False
        downhill's own: check every step against the other path (GPU against CPU, CPU
        against the f64 reference); a gap beyond the tolerance raises RuntimeError.

    **The loss differs:** downhill minimises the mean squared error, not half of it, so its
    gradients (and ``loss_curve_``) are twice scikit-learn's for the same weights.

    Attributes: ``coefs_`` (per layer, inputs x nodes), ``intercepts_``, ``loss_curve_``
    (each epoch's loss), ``validation_scores_`` (with ``early_stopping``: R^2 on the
    held-out points after each epoch: ``1 - MSE / variance``, the variance being the mean of
    each output's, which is scikit-learn's ``r2_score(multioutput="variance_weighted")``
    and, for one output, its R^2), ``best_validation_score_``, ``n_iter_`` (epochs
    run), ``stopped_`` (why training stopped), ``model_`` (a ``downhill.Model``),
    ``n_features_in_``, ``n_outputs_``.

    Fitting releases the GIL, and reads a float32 X and y in place: nothing may write to them
    while it runs. Ctrl-C stops after the steps in flight: the fitted attributes hold the
    weights reached (with ``early_stopping``, the best epoch's), and KeyboardInterrupt is
    raised again.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate_init=0.001, max_iter=200,
                 momentum=0.9, nesterovs_momentum=True, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, tol=1e-4, random_state=None, device="auto",
                 verify=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.device = device
        self.verify = verify

    def _optimizer(self):
        if self.solver == "adam":
            return "adam"
        if self.solver == "sgd":
            if self.momentum == 0:
                return "gd"
            return "nesterov" if self.nesterovs_momentum else "momentum"
        raise ValueError(f"solver={self.solver!r}: expected 'sgd' or 'adam'")

    def _hidden(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if np.isscalar(sizes) else list(sizes)
        if any(int(s) != s or s < 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes={self.hidden_layer_sizes!r}: expected sizes of at least 1")
        return [int(s) for s in sizes]

    def _seed(self):
        if self.random_state is None:
            return int(np.random.randint(0, 2**31 - 1))
        if isinstance(self.random_state, np.random.RandomState):
            return int(self.random_state.randint(0, 2**31 - 1))
        return int(self.random_state)

    def _check_params(self):
        for name, least in [("max_iter", 1), ("n_iter_no_change", 1)]:
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < least:
                raise ValueError(f"{name}={value!r}: expected a whole number of at least {least}")
        if self.batch_size not in ("auto", None) and (
            isinstance(self.batch_size, (bool, str)) or int(self.batch_size) != self.batch_size
            or self.batch_size < 1
        ):
            raise ValueError(f"batch_size={self.batch_size!r}: expected 'auto', None or a "
                             "whole number of at least 1")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation={self.activation!r}: expected one of {sorted(_ACTIVATIONS)}")
        if self.early_stopping and not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction={self.validation_fraction!r}: expected a "
                             "fraction between 0 and 1")

    def fit(self, X, y):
        """Trains on ``X`` (n_samples x n_features) and ``y`` (n_samples, or n_samples x
        n_outputs); returns self."""
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True,
                             dtype=(np.float32, np.float64))
        self._check_params()
        n = X.shape[0]
        if self.early_stopping:
            # The held-out points leave first (rounded as the engine rounds them): the
            # batches are cut from the rest.
            n -= held_out(n, self.validation_fraction)
        if self.batch_size == "auto":
            batch = min(200, n)
        elif self.batch_size is None:
            batch = None
        else:
            batch = min(int(self.batch_size), n)
        history, model, interrupt = _run(
            X, y, hidden_layer_sizes=self._hidden(),
            activation=_ACTIVATIONS[self.activation], optimizer=self._optimizer(),
            learning_rate=self.learning_rate_init, epochs=self.max_iter,
            batch_size=None if batch is None or batch >= n else batch,
            momentum=self.momentum, beta_1=self.beta_1, beta_2=self.beta_2,
            epsilon=self.epsilon, weight_decay=self.alpha, tol=self.tol,
            seed=self._seed(), device=self.device,
            validation_fraction=self.validation_fraction if self.early_stopping else None,
            patience=self.n_iter_no_change if self.early_stopping else None,
            init=None, verify=self.verify, restore_best=self.early_stopping,
        )
        self._set_fitted(history, model)
        if interrupt is not None:
            raise interrupt
        return self

    def _set_fitted(self, history, model):
        self.model_ = model
        layers = model.layers
        self.coefs_ = [layer["weights"].T.copy() for layer in layers]
        self.intercepts_ = [
            layer["bias"] if layer["bias"] is not None else np.zeros(len(layer["weights"]))
            for layer in layers
        ]
        self.loss_curve_ = list(history["epoch_loss"] or history["loss"])
        self.n_iter_ = max(history["epochs"], 1)
        self.stopped_ = history["stopped"]
        self.n_outputs_ = self.coefs_[-1].shape[1]
        self.out_activation_ = "identity"
        self.n_layers_ = len(layers) + 1
        self.history_ = history
        if self.early_stopping:
            variance = history["held_out_variance"] or 0.0
            self.validation_scores_ = [
                1.0 - loss / variance if variance > 0 else 0.0
                for loss in history["validation_loss"]
            ]
            self.best_validation_score_ = max(self.validation_scores_, default=None)
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def predict(self, X):
        """The network's outputs for ``X``: n_samples (one output) or n_samples x
        n_outputs."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=(np.float32, np.float64))
        predicted = self.model_.predict(X, device=self.device).astype(np.float64)
        # One output comes back 1-D, as scikit-learn's MLPRegressor returns it.
        return predicted.ravel() if predicted.shape[1] == 1 else predicted

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"multioutput": True}

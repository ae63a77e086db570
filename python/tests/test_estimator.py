"""MLPRegressor follows scikit-learn's conventions: its own checks, clone, pipelines, grid
search, pickling, and the attributes of a fitted estimator."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import downhill


def lesson_points(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = np.maximum(X[:, 0] - X[:, 1], 0.0) + 0.5 * X[:, 0] + 0.05 * rng.normal(size=n)
    return X, y


# scikit-learn's own checks skip two of theirs here: the array-API check (SCIPY_ARRAY_API
# unset) and the pandas one (pandas not installed).
@parametrize_with_checks([downhill.MLPRegressor(device="cpu")])
def test_scikit_learns_checks(estimator, check):
    check(estimator)


def test_fit_predict_score_and_the_fitted_attributes():
    X, y = lesson_points()
    model = downhill.MLPRegressor(hidden_layer_sizes=(8,), learning_rate_init=0.01,
                                  max_iter=100, random_state=1, device="cpu").fit(X, y)
    assert model.score(X, y) > 0.9
    assert [c.shape for c in model.coefs_] == [(2, 8), (8, 1)]
    assert [b.shape for b in model.intercepts_] == [(8,), (1,)]
    assert len(model.loss_curve_) == model.n_iter_ == 100
    assert model.loss_curve_[-1] < model.loss_curve_[0]
    assert model.stopped_ == "max_steps"
    assert model.predict(X).shape == (600,)
    assert model.n_features_in_ == 2


def test_early_stopping_scores_the_held_out_points_each_epoch():
    X, y = lesson_points()
    model = downhill.MLPRegressor(hidden_layer_sizes=(8,), learning_rate_init=0.05,
                                  max_iter=300, early_stopping=True, n_iter_no_change=3,
                                  random_state=2, device="cpu").fit(X, y)
    assert len(model.validation_scores_) == model.n_iter_
    assert model.best_validation_score_ == max(model.validation_scores_)
    assert model.best_validation_score_ > 0.8


def test_early_stopping_keeps_the_best_epochs_weights_even_at_max_iter():
    # As scikit-learn's: a run that reaches max_iter still ends at the weights of its lowest
    # held-out loss. The same run cut at that epoch must end at the same weights.
    X, y = lesson_points()
    checked = 0
    for seed in range(6):
        params = dict(hidden_layer_sizes=(8,), learning_rate_init=0.05, max_iter=25,
                      early_stopping=True, n_iter_no_change=1000, random_state=seed,
                      device="cpu")
        model = downhill.MLPRegressor(**params).fit(X, y)
        assert model.n_iter_ == 25
        best = int(np.argmin(model.history_["validation_loss"]))  # the first lowest
        if best == 24:
            continue
        cut = downhill.MLPRegressor(**{**params, "max_iter": best + 1}).fit(X, y)
        assert cut.model_ == model.model_, f"seed {seed}: best epoch {best + 1}"
        checked += 1
    assert checked > 0, "no run whose best epoch came before its last"


def test_clone_pipeline_cross_validation_and_grid_search():
    X, y = lesson_points(300)
    base = downhill.MLPRegressor(hidden_layer_sizes=(4,), max_iter=50, random_state=0,
                                 device="cpu")
    assert clone(base).get_params() == base.get_params()
    pipe = make_pipeline(StandardScaler(), base)
    assert cross_val_score(pipe, X, y, cv=3).shape == (3,)
    search = GridSearchCV(base, {"learning_rate_init": [0.0001, 0.01]}, cv=3).fit(X, y)
    assert search.best_params_ == {"learning_rate_init": 0.01}


def test_a_pickled_estimator_predicts_the_same():
    X, y = lesson_points(200)
    model = downhill.MLPRegressor(hidden_layer_sizes=(3,), max_iter=20, random_state=0,
                                  device="cpu").fit(X, y)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    assert again.model_ == model.model_


def test_the_same_parameters_as_scikit_learns_mlpregressor():
    from sklearn.neural_network import MLPRegressor

    theirs = set(MLPRegressor().get_params())
    ours = set(downhill.MLPRegressor().get_params())
    shared = {"hidden_layer_sizes", "activation", "solver", "batch_size", "learning_rate_init",
              "max_iter", "momentum", "nesterovs_momentum", "beta_1", "beta_2", "epsilon",
              "alpha", "early_stopping", "validation_fraction", "n_iter_no_change", "tol",
              "random_state"}
    assert shared <= theirs and shared <= ours
    assert ours - theirs == {"device", "verify"}


def test_early_stopping_cuts_the_batches_from_the_points_left_for_training():
    # 210 points: 21 held out, so the default batch of 200 is cut from 189.
    X, y = lesson_points(210)
    model = downhill.MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, early_stopping=True,
                                  random_state=0, device="cpu").fit(X, y)
    assert len(model.validation_scores_) == model.n_iter_


@pytest.mark.parametrize("params", [
    {"max_iter": 0}, {"batch_size": -5}, {"batch_size": 2.5}, {"n_iter_no_change": 0},
    {"activation": "swish"}, {"solver": "lbfgs"}, {"hidden_layer_sizes": (0,)},
    {"early_stopping": True, "validation_fraction": 1.5},
])
def test_bad_parameters_raise_value_error_at_fit(params):
    X, y = lesson_points(50)
    with pytest.raises(ValueError):
        downhill.MLPRegressor(**params).fit(X, y)


def test_one_output_is_predicted_1d_whatever_the_shape_of_y():
    X, y = lesson_points(100)
    model = downhill.MLPRegressor(hidden_layer_sizes=(3,), max_iter=3, random_state=0,
                                  device="cpu").fit(X, y.reshape(-1, 1))
    assert model.predict(X).shape == (100,)

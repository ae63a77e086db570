"""The lesson's worked examples (docs/LESSON.md), from Python: the baseline 2-2-1 network,
the squared-error table, the slope of one weight and of two, and the steps downhill."""

import numpy as np
import pytest

import downhill


def linear(weights):
    return downhill.Model.from_layers([{"weights": weights, "activation": "identity"}])


def baseline():
    return downhill.Model.from_layers([
        {"weights": [[1, 1], [-1, 1]], "activation": "identity"},
        {"weights": [[2, -1]], "activation": "identity"},
    ])


def test_a_the_baseline_network_predicts_9_and_misses_13_by_4():
    model = baseline()
    X, y = np.array([[2.0, 3.0]]), np.array([13.0])
    assert model.predict(X)[0, 0] == pytest.approx(9.0)
    assert model.loss(X, y) == pytest.approx(16.0)


def test_b_the_squared_error_table_totals_150_and_averages_50():
    predictions, targets = np.array([[10.0], [8.0], [6.0]]), np.array([20.0, 3.0, 1.0])
    assert linear([[1.0]]).loss(predictions, targets) == pytest.approx(50.0)


def test_c_one_weight_slope_is_minus_24_and_a_step_gives_2_24():
    X, y = np.array([[3.0]]), np.array([10.0])
    model = linear([[2.0]])
    assert model.predict(X)[0, 0] == pytest.approx(6.0)
    assert model.gradient(X, y) == pytest.approx({"l0.n0.w0": -24.0})
    history, stepped = downhill.train(X, y, init=model, steps=1, learning_rate=0.01,
                                      device="cpu")
    assert history.loss == pytest.approx([16.0])
    assert stepped.layers[0]["weights"][0, 0] == pytest.approx(2.24, rel=1e-6)


def test_d_two_weights_slopes_30_and_40_and_a_step_halves_the_error():
    X, y = np.array([[3.0, 4.0]]), np.array([6.0])
    model = linear([[1.0, 2.0]])
    assert model.gradient(X, y) == pytest.approx({"l0.n0.w0": 30.0, "l0.n0.w1": 40.0})
    _, stepped = downhill.train(X, y, init=model, steps=1, learning_rate=0.01, device="cpu")
    assert stepped.layers[0]["weights"][0] == pytest.approx([0.7, 1.6], rel=1e-6)
    assert stepped.predict(X)[0, 0] == pytest.approx(8.5, rel=1e-6)
    assert stepped.loss(X, y) ** 0.5 == pytest.approx(2.5, rel=1e-6)


def test_the_landscape_is_the_loss_at_each_grid_weight_and_its_slope():
    X, y = np.array([[3.0]]), np.array([10.0])
    model = linear([[2.0]])
    curve = downhill.landscape(model, X, y, ["l0.n0.w0"], ranges=[(0.0, 4.0)], grid=5)
    assert curve["axes"][0] == pytest.approx([0, 1, 2, 3, 4])
    # (3 w - 10)^2 at each w.
    assert curve["losses"] == pytest.approx([100, 49, 16, 1, 4])
    assert curve["slope"] == pytest.approx([-24.0])
    surface = downhill.landscape(baseline(), np.array([[2.0, 3.0]]), np.array([13.0]),
                                 ["l1.n0.w0", "l1.n0.w1"], grid=3)
    assert surface["losses"].shape == (3, 3)
    assert surface["current_loss"] == pytest.approx(16.0)


def test_the_readmes_python_example_runs_and_goes_downhill(capsys):
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "the README has a Python example"
    scope = {}
    exec(blocks[0], scope)
    assert scope["net"].loss(scope["X"], scope["y"]) == pytest.approx(16.0)
    losses = scope["history"].loss
    assert all(later < earlier for earlier, later in zip(losses, losses[1:]))

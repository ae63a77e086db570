"""The engine from Python is the command's: the same weights from the same training, models
that cross between them, arrays taken in any dtype and layout, errors as Python's."""

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import downhill


def points(n=500, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)).astype(np.float32)
    y = (np.maximum(X[:, 0] + X[:, 1], 0) - 0.3 * X[:, 1]).astype(np.float32)
    return X, y


def test_python_and_the_cli_train_the_same_weights(tmp_path, downhill_cli):
    X, y = points()
    data = tmp_path / "points.npy"
    np.save(data, np.column_stack([X, y]))
    for optimizer, batch in [("gd", None), ("adam", 64)]:
        out = tmp_path / f"{optimizer}.json"
        args = [downhill_cli, "train", "--data", str(data), "--layers", "2,3,1", "--steps", "30",
                "--lr", "0.05", "--seed", "7", "--tol", "0", "--optimizer", optimizer,
                "--device", "cpu", "--out", str(out), "--json"]
        if batch:
            args = [a if a != "--steps" else "--epochs" for a in args] + ["--batch-size", str(batch)]
        ran = subprocess.run(args, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stderr
        report = json.loads(ran.stdout)
        history, model = downhill.train(X, y, hidden_layer_sizes=(3,), optimizer=optimizer,
                                        learning_rate=0.05, steps=30, batch_size=batch,
                                        seed=7, tol=0, device="cpu")
        cli_model = downhill.load(out)
        for mine, theirs in zip(model.layers, cli_model.layers):
            np.testing.assert_array_equal(mine["weights"], theirs["weights"])
            np.testing.assert_array_equal(mine["bias"], theirs["bias"])
        assert history.loss == report["loss_history"]


def test_a_model_saved_from_python_is_read_by_the_cli(tmp_path, downhill_cli):
    X, y = points(50)
    _, model = downhill.train(X, y, steps=5, device="cpu")
    path = tmp_path / "model.json"
    model.save(path)
    data = tmp_path / "points.csv"
    np.savetxt(data, np.column_stack([X, y]), delimiter=",", header="x0,x1,y", comments="")
    ran = subprocess.run([downhill_cli, "eval", "--model", str(path), "--data", str(data),
                          "--json", "--device", "cpu"], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["mse"] == pytest.approx(model.loss(X, y), rel=1e-6)
    assert downhill.load(path) == model


def test_float64_and_other_layouts_give_what_float32_gives():
    X, y = points(300)
    _, want = downhill.train(X, y, steps=10, device="cpu")
    wide = np.asfortranarray(X.astype(np.float64))
    strided = np.zeros((300, 4), dtype=np.float32)
    strided[:, ::2] = X
    for other in [wide, strided[:, ::2], X.tolist()]:
        _, got = downhill.train(other, y.astype(np.float64), steps=10, device="cpu")
        assert got == want
    # Strided views of one C-ordered table (X its first columns, y its last), read in place;
    # a reversed view of reversed points and unaligned arrays, copied once.
    table = np.column_stack([X, y])
    backwards = np.ascontiguousarray(table[::-1])
    for X_, y_ in [(table[:, :2], table[:, 2]), (backwards[::-1, :2], backwards[::-1, 2]),
                   (unaligned(X), unaligned(y))]:
        for device in ["cpu"] + (["gpu"] if downhill.devices() else []):
            _, got = downhill.train(X_, y_, steps=10, device=device)
            _, same = downhill.train(X, y, steps=10, device=device)
            assert got == same, device
    np.testing.assert_array_equal(want.predict(np.asfortranarray(X)), want.predict(X))


def unaligned(array):
    """A float32 copy of ``array`` one byte off numpy's alignment (as ``np.frombuffer`` with
    an offset gives)."""
    raw = np.frombuffer(bytearray(array.nbytes + 1), dtype=np.float32, offset=1,
                        count=array.size).reshape(array.shape)
    raw[...] = array
    assert not raw.flags.aligned
    return raw


def test_float32_arrays_are_read_in_place_and_reversed_or_unaligned_ones_copied_once():
    from downhill import _core
    from downhill._arrays import as_points

    X, y = points(1000)
    table = np.column_stack([X, y])  # C order: X and y are strided views of it
    wide = np.zeros((1000, 4), dtype=np.float32)
    in_place = [(X, y), (np.asfortranarray(X), y), (table[:, :2], table[:, 2]),
                (wide[:, ::2], y), (X[::2], y[::2]), (np.broadcast_to(X[:1], X.shape), y)]
    for X_, y_ in in_place:
        px, py = as_points(X_, "X"), as_points(y_, "y")
        assert np.shares_memory(px, X_) and np.shares_memory(py, y_)
        assert _core.reads_in_place(px, py)
    converted = [(X.astype(np.float64), y), (np.asfortranarray(X, np.float64), y), (X[::-1], y),
                 (unaligned(X), y)]
    for X_, y_ in converted:
        px = as_points(X_, "X")
        assert not np.shares_memory(px, X_)  # one copy, here, and then read in place
        assert _core.reads_in_place(px, as_points(y_, "y"))
    # Handed over reversed (not through as_points), the engine copies instead.
    assert not _core.reads_in_place(X[::-1], y.reshape(-1, 1))


FIT_MEMORY = """
import resource, sys
import numpy as np
import downhill
n, layout = 4_000_000, sys.argv[1]
if layout == "table":  # X and y: strided views of one C-ordered table
    table = np.empty((n, 3), np.float32)
    X, y = table[:, :2], table[:, 2]
else:
    X, y = np.empty((n, 2), np.float32, order=layout), np.empty(n, np.float32)
rng = np.random.default_rng(0)
for first in range(0, n, 1 << 16):  # filled a piece at a time: no transient copy of X
    piece = rng.normal(size=(min(1 << 16, n - first), 2)).astype(np.float32)
    X[first:first + len(piece)] = piece
    y[first:first + len(piece)] = np.maximum(piece[:, 0] + piece[:, 1], 0)
params = dict(hidden_layer_sizes=(2,), solver="sgd", momentum=0.0, max_iter=3, tol=0.0,
              random_state=0, device="cpu")
# A small fit first: the thread pool, its stacks and buffers are not what is measured.
downhill.MLPRegressor(batch_size=50_000, **params).fit(X[:50_000], y[:50_000])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
downhill.MLPRegressor(batch_size=n, **params).fit(X, y)
added = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
print(added * unit / (4 * n * 3))
"""


@pytest.mark.parametrize("layout", ["C", "F", "table"])
def test_a_fit_holds_x_once(layout):
    # The peak memory a fit adds, as a fraction of X and y: a copy of them would add 1.
    env = dict(os.environ, RAYON_NUM_THREADS="2")
    ran = subprocess.run([sys.executable, "-c", FIT_MEMORY, layout], capture_output=True,
                         text=True, env=env)
    assert ran.returncode == 0, ran.stderr
    assert float(ran.stdout) < 0.25


@pytest.mark.parametrize("X, y, message", [
    (np.ones((5, 2)), np.ones(4), "X has 5 rows but y has 4"),
    (np.array([[1.0, np.nan]]), np.ones(1), "X: row 1, column 2: NaN is not a finite number"),
    (np.ones((3, 2)), np.array([1.0, np.inf, 2.0]), "y: row 2, column 1"),
    (np.ones((0, 2)), np.ones(0), "holds no data"),
    (np.ones((2, 2, 2)), np.ones(2), "expected a 2-D array"),
])
def test_bad_input_raises_value_error(X, y, message):
    with pytest.raises(ValueError, match=message):
        downhill.train(X, y, steps=1)


def test_mismatched_widths_and_splits_are_named_by_the_python_arguments():
    X, y = points(50)
    _, model = downhill.train(X, y, steps=1, device="cpu")  # 2 inputs, 1 output
    wide = np.column_stack([X, y, y])
    with pytest.raises(ValueError, match="X has 3 columns, but the model takes 2 inputs"):
        model.loss(wide[:, :3], y)
    with pytest.raises(ValueError, match="y has 2 columns, but the model gives 1 outputs"):
        model.loss(X, wide[:, 2:])
    with pytest.raises(ValueError, match="y has 2 columns, but the model gives 1 outputs"):
        downhill.train(X, wide[:, 2:], init=model, steps=1, device="cpu")
    with pytest.raises(ValueError, match="X has 1 columns"):
        downhill.landscape(model, X[:, :1], wide[:, 2:], ["l1.n0.w0"], device="cpu")
    with pytest.raises(ValueError, match=r"validation_fraction=0.5: .* each side of 1 points"):
        downhill.train(X[:1], y[:1], validation_fraction=0.5, patience=1, device="cpu")
    with pytest.raises(ValueError, match="batch_size=10: .* the 3 training points"):
        downhill.train(X[:3], y[:3], batch_size=10, device="cpu")
    with pytest.raises(ValueError, match="batch_size=10: .* the 4 training points"):
        downhill.train(X[:5], y[:5], batch_size=10, validation_fraction=0.2, device="cpu")


def test_a_float64_beyond_float32s_range_is_named_not_made_inf():
    X = np.ones((4, 2))
    X[2, 1] = -1e39
    with pytest.raises(ValueError, match=r"X: row 3, column 2: -1e\+39 is beyond float32's"):
        downhill.train(X, np.ones(4), steps=1, device="cpu")


def test_bad_arguments_raise_the_clis_message():
    X, y = points(20)
    with pytest.raises(ValueError, match="batch_size=21"):
        downhill.train(X, y, batch_size=21)
    with pytest.raises(ValueError, match="unknown activation"):
        downhill.train(X, y, activation="swish")
    with pytest.raises(ValueError, match="learning rate"):
        downhill.train(X, y, learning_rate=-1)
    with pytest.raises(ValueError, match="model"):
        downhill.Model("{}")
    with pytest.raises(ValueError, match="patience=0"):
        downhill.train(X, y, validation_fraction=0.2, patience=0)
    with pytest.raises(ValueError, match="needs validation_fraction"):
        downhill.train(X, y, patience=3)
    with pytest.raises(ValueError, match="steps=-1"):
        downhill.train(X, y, steps=-1)


def test_a_diverged_run_raises_with_the_last_finite_model():
    X, y = points(100)
    with pytest.raises(downhill.DivergedError) as raised:
        downhill.train(X * 100, y, steps=200, learning_rate=50, device="cpu")
    weights = np.concatenate([l["weights"].ravel() for l in raised.value.model.layers])
    assert np.isfinite(weights).all()
    assert raised.value.history.stopped == "diverged"


def test_the_gpu_gives_the_cpus_weights_within_its_tolerance():
    if not downhill.devices():
        if os.environ.get("DOWNHILL_REQUIRE_GPU") == "1":
            pytest.fail("DOWNHILL_REQUIRE_GPU=1 but no adapter was found")
        pytest.skip("no GPU adapter")
    X, y = points(1000)
    _, cpu = downhill.train(X, y, steps=20, device="cpu")
    history, gpu = downhill.train(X, y, steps=20, device="gpu")
    assert history.device == "gpu"
    for a, b in zip(cpu.layers, gpu.layers):
        np.testing.assert_allclose(a["weights"], b["weights"], rtol=1e-4, atol=1e-5)


def test_ctrl_c_stops_training_keeps_the_weights_and_raises_again():
    script = textwrap.dedent("""
        import signal
        import numpy as np, downhill
        # Python keeps SIGINT ignored when it starts ignored (a background job's): the test
        # wants Ctrl-C's KeyboardInterrupt whatever started it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        X = np.random.default_rng(0).normal(size=(20000, 2)).astype(np.float32)
        y = X[:, 0] - X[:, 1]
        print("training", flush=True)
        try:
            downhill.train(X, y, steps=10**9, device="cpu")
        except KeyboardInterrupt as stopped:
            print("stopped after", stopped.history.steps, "steps;",
                  "model", stopped.model is not None, flush=True)
            estimator = downhill.MLPRegressor(max_iter=10**9, batch_size=None, tol=0,
                                              device="cpu")
            print("fitting", flush=True)
            try:
                estimator.fit(X, y)
            except KeyboardInterrupt:
                print("fitted", estimator.n_iter_ > 0, len(estimator.coefs_), flush=True)
                raise
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    # The child's lines, read by a thread, so that waiting for one has a time limit.
    lines = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(l) for l in iter(child.stdout.readline, "")],
                              daemon=True)
    reader.start()
    seen = []
    try:
        for expected in ["training", "fitting"]:
            while not (seen and seen[-1].startswith(expected)):
                try:
                    seen.append(lines.get(timeout=60))
                except queue.Empty:
                    pytest.fail(f"no {expected!r} line within 60 s: {''.join(seen)}")
            time.sleep(1.0)
            child.send_signal(signal.SIGINT)
        child.wait(timeout=60)
        reader.join(timeout=10)
        err = child.stderr.read()
    finally:
        child.kill()
    while not lines.empty():
        seen.append(lines.get())
    out = "".join(seen)
    assert "model True" in out and "fitted True 2" in out, out + err
    assert "KeyboardInterrupt" in err
    assert child.returncode != 0


def test_a_signal_handlers_own_exception_comes_back_with_the_weights_reached():
    def timed_out(signum, frame):
        raise TimeoutError("training took too long")

    X, y = points(20000)
    previous = signal.signal(signal.SIGALRM, timed_out)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(TimeoutError, match="too long") as raised:
            downhill.train(X, y, steps=10**9, tol=0, device="cpu")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert raised.value.history.steps > 0
    assert raised.value.model.loss(X, y) < raised.value.history.loss[0]


def test_looking_for_a_gpu_prints_nothing_without_xdg_runtime_dir():
    # Mesa's Wayland probe would print "error: XDG_RUNTIME_DIR is invalid or not set" (CI and
    # containers run without that directory); the package points the probe at no display.
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "WAYLAND_DISPLAY")}
    ran = subprocess.run([sys.executable, "-c", "import downhill; downhill.devices()"], env=env,
                         capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr == ""

# SPDX-License-Identifier: Apache-2.0
"""Interrupted training never leaves a half-updated model behind.

The interrupt is raised from inside a sweep (the state step, after the weight steps of that
sweep have already changed the weights), the worst place for it.
"""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import cvx_lifted as cl
from cvx_lifted import LiftedMLPClassifier, LiftedNetwork
from cvx_lifted.bcd import BCDSolver

REPO = Path(__file__).resolve().parents[1]


def _data(m=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, 4))
    y = (X[:, 0] - X[:, 1] > 0).astype(int)
    return X, y, np.eye(2)[y]


@pytest.fixture
def interrupt_in_state_step(monkeypatch):
    """Raise KeyboardInterrupt in the state step of the given sweep (1-based)."""
    real = BCDSolver._state_step
    calls = {"n": 0, "at": None}

    def step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == calls["at"]:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(BCDSolver, "_state_step", step)

    def arm(sweep):
        calls["n"], calls["at"] = 0, sweep  # one hidden layer: one state step per sweep

    return arm


def test_interrupt_mid_sweep_restores_the_last_complete_sweep(interrupt_in_state_step, tmp_path):
    X, _, Y = _data()
    seen = {}

    def record(sweep, partial):
        seen[sweep] = ([W.copy() for W in partial.network.weights], list(partial.history.objective))

    net = LiftedNetwork([4, 6, 2], output="simplex_xent")
    interrupt_in_state_step(4)
    with pytest.raises(KeyboardInterrupt) as info:
        net.fit(X, Y, max_iter=10, tol=0, random_state=0, callback=record)
    assert "stopped during sweep 4" in "".join(info.value.__notes__)
    assert "weights of sweep 3, the last complete one" in "".join(info.value.__notes__)
    assert net.is_fitted and sorted(seen) == [1, 2, 3]
    for W, W3 in zip(net.weights, seen[3][0], strict=True):
        np.testing.assert_array_equal(W, W3)  # not the half-updated weights of sweep 4
    assert net.history.objective == seen[3][1]  # the history stops at sweep 3 too
    # what save() writes is that consistent state
    loaded = cl.load(net.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    assert len(loaded.history.objective) == 4


def test_interrupt_in_the_first_sweep_leaves_no_weights(interrupt_in_state_step, tmp_path):
    X, _, Y = _data()
    net = LiftedNetwork([4, 6, 2], output="simplex_xent")
    interrupt_in_state_step(1)
    with pytest.raises(KeyboardInterrupt) as info:
        net.fit(X, Y, max_iter=5, random_state=0)
    assert "is_fitted is False" in "".join(info.value.__notes__)
    assert not net.is_fitted and net.history is None
    assert not cl.load(net.save(tmp_path / "m")).is_fitted  # an architecture, not a model
    with pytest.raises(RuntimeError, match="no weights yet"):
        net.predict(X)


def test_interrupted_refit_keeps_the_previous_weights(interrupt_in_state_step):
    X, _, Y = _data()
    net = LiftedNetwork([4, 6, 2], output="simplex_xent")
    net.fit(X, Y, max_iter=3, random_state=0)
    before = [W.copy() for W in net.weights]
    history = net.history
    for warm in (False, True):
        interrupt_in_state_step(1)
        with pytest.raises(KeyboardInterrupt) as info:
            net.fit(X[::-1], Y[::-1], max_iter=3, random_state=1, warm_start=warm)
        assert "keeps the weights it had before fit()" in "".join(info.value.__notes__)
        for W, W0 in zip(net.weights, before, strict=True):
            np.testing.assert_array_equal(W, W0)
        assert net.history is history


def test_bad_input_does_not_touch_a_fitted_network():
    X, _, Y = _data()
    net = LiftedNetwork([4, 6, 2], output="simplex_xent")
    net.fit(X, Y, max_iter=2, random_state=0)
    before = [W.copy() for W in net.weights]
    with pytest.raises(ValueError) as info:
        net.fit(X[:, :3], Y)
    assert not getattr(info.value, "__notes__", None)
    for W, W0 in zip(net.weights, before, strict=True):
        np.testing.assert_array_equal(W, W0)


def test_estimator_refit_interrupted_keeps_the_previous_fit(interrupt_in_state_step):
    X, y, _ = _data()
    clf = LiftedMLPClassifier(hidden_layer_sizes=(6,), max_iter=3, random_state=0)
    with pytest.warns(Warning):
        clf.fit(X, y)
    state = {k: v for k, v in vars(clf).items() if k.endswith("_")}
    interrupt_in_state_step(2)
    with pytest.raises(KeyboardInterrupt) as info:
        clf.fit(X[:, :3], y)  # a refit on other data (3 features) that does not finish
    note = "".join(info.value.__notes__)
    assert "LiftedMLPClassifier.fit was interrupted" in note and "keeps its previous fit" in note
    assert clf.n_features_in_ == 4 and clf.network_ is state["network_"]
    assert {k: v for k, v in vars(clf).items() if k.endswith("_")}.keys() == state.keys()
    np.testing.assert_array_equal(clf.predict(X), state["classes_"][clf.predict_proba(X).argmax(1)])
    # a first fit that is interrupted leaves the estimator unfitted
    fresh = LiftedMLPClassifier(hidden_layer_sizes=(6,), max_iter=3, random_state=0)
    interrupt_in_state_step(1)
    with pytest.raises(KeyboardInterrupt) as info:
        fresh.fit(X, y)
    assert "is not fitted" in "".join(info.value.__notes__)
    assert not hasattr(fresh, "network_") and not hasattr(fresh, "n_features_in_")


def test_ctrl_c_in_a_real_process(tmp_path):
    """SIGINT while a larger fit runs: the script catches it and saves what is left."""
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import cvx_lifted as cl

        rng = np.random.default_rng(0)
        X = rng.standard_normal((3000, 40))
        Y = np.eye(5)[rng.integers(0, 5, 3000)]
        net = cl.LiftedNetwork([40, 200, 5], output="simplex_xent")

        def started(sweep, partial):
            if sweep == 1:
                print("sweep 1 done", flush=True)

        try:
            net.fit(X, Y, max_iter=10_000, tol=0, random_state=0, callback=started)
        except KeyboardInterrupt as exc:
            print("notes:", " ".join(exc.__notes__), flush=True)
        print("fitted:", net.is_fitted, len(net.history.objective) - 1, flush=True)
        net.save({str(tmp_path / "m.cvxl")!r})
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    assert proc.stdout.readline().strip() == "sweep 1 done"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "the last complete one" in out
    sweeps = int(out.split("fitted: True ")[1].split()[0])
    loaded = cl.load(tmp_path / "m.cvxl")
    assert loaded.is_fitted and len(loaded.history.objective) - 1 == sweeps >= 1

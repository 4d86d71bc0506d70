# SPDX-License-Identifier: Apache-2.0
"""The estimators and ``cvx-lifted train`` on Dask arrays, on a LocalCluster of two processes."""

import warnings

import numpy as np
import pytest

from cvx_lifted import LiftedMLPClassifier, LiftedMLPRegressor, cli
from cvx_lifted.io import load_model

da = pytest.importorskip("dask.array", reason="the Dask path needs the [dask] extra")
distributed = pytest.importorskip("distributed", reason="the Dask path needs the [dask] extra")

from cvx_lifted.distributed import cluster as cluster_module  # noqa: E402

# small chunks on purpose: their warning is tested in test_distributed.py
pytestmark = pytest.mark.filterwarnings("ignore:X is cut into:UserWarning")

FEW = {"hidden_layer_sizes": (10,), "max_iter": 3, "tol": 0.0, "random_state": 2}


@pytest.fixture(autouse=True)
def _no_convergence_warnings():
    """A few sweeps with ``tol=0`` stop on ``max_iter``, which the estimators warn about."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)
        yield


def _data(m=480, p=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, p))
    labels = np.array(["ant", "bee", "cat"])[np.argmax(X[:, :3] + 0.3 * X[:, 3:], axis=1)]
    target = X @ rng.standard_normal(p) + 0.1 * rng.standard_normal(m)
    return X, labels, target


def _assert_same_fit(mem, dsk, rtol=1e-6):
    assert dsk.n_iter_ == mem.n_iter_ and dsk.n_features_in_ == mem.n_features_in_
    assert dsk.n_outputs_ == mem.n_outputs_ and dsk.stop_reason_ == mem.stop_reason_
    pairs = zip(mem.coefs_ + mem.intercepts_, dsk.coefs_ + dsk.intercepts_, strict=True)
    for A, B in pairs:
        assert np.abs(A - B).max() <= rtol * np.abs(A).max()
    np.testing.assert_allclose(dsk.objective_curve_, mem.objective_curve_, rtol=rtol)


@pytest.mark.parametrize("labels_on", ["dask", "numpy"])
def test_classifier_on_dask_arrays_follows_the_numpy_fit(dask_active, labels_on):
    X, labels, _ = _data()
    Xd = da.from_array(X, chunks=(160, 6))
    y = da.from_array(labels, chunks=100) if labels_on == "dask" else labels  # other chunks
    mem = LiftedMLPClassifier(output="softmax_xent", **FEW).fit(X, labels)
    dsk = LiftedMLPClassifier(output="softmax_xent", **FEW).fit(Xd, y)
    _assert_same_fit(mem, dsk)
    np.testing.assert_array_equal(dsk.classes_, ["ant", "bee", "cat"])
    assert not hasattr(dsk, "feature_names_in_")

    pred, proba = dsk.predict(Xd), dsk.predict_proba(Xd)
    assert isinstance(pred, da.Array) and isinstance(proba, da.Array)  # lazy
    assert pred.chunks == (Xd.chunks[0],) and proba.chunks == (Xd.chunks[0], (3,))
    np.testing.assert_array_equal(pred.compute(), mem.predict(X))
    np.testing.assert_allclose(proba.compute(), mem.predict_proba(X), rtol=1e-6, atol=1e-9)
    assert dsk.score(Xd, y) == pytest.approx(mem.score(X, labels), abs=1e-12)
    w = np.linspace(0.5, 1.5, len(X))
    assert dsk.score(Xd, labels, sample_weight=w) == pytest.approx(
        mem.score(X, labels, sample_weight=w), rel=1e-12
    )
    # the model trained on the cluster predicts arrays in memory as any fit does
    np.testing.assert_array_equal(dsk.predict(X), mem.predict(X))


def test_the_default_simplex_head_and_integer_labels_follow_the_numpy_fit(dask_active):
    X, labels, _ = _data(m=300, seed=1)
    codes = np.searchsorted(["ant", "bee", "cat"], labels) * 10  # integer classes 0, 10, 20
    mem = LiftedMLPClassifier(**FEW).fit(X, codes)
    dsk = LiftedMLPClassifier(**FEW).fit(da.from_array(X, chunks=(120, 6)), da.from_array(codes))
    _assert_same_fit(mem, dsk)
    np.testing.assert_array_equal(dsk.classes_, [0, 10, 20])
    Xd = da.from_array(X, chunks=(90, 6))  # predictions follow the chunks of their own input
    assert dsk.predict(Xd).chunks == (Xd.chunks[0],)
    np.testing.assert_array_equal(dsk.predict(Xd).compute(), mem.predict(X))


def test_regressor_on_dask_arrays_follows_the_numpy_fit(dask_active):
    X, _, target = _data()
    Xd = da.from_array(X, chunks=(200, 6))
    mem = LiftedMLPRegressor(**FEW).fit(X, target)
    dsk = LiftedMLPRegressor(**FEW).fit(Xd, da.from_array(target, chunks=120))
    _assert_same_fit(mem, dsk)
    pred = dsk.predict(Xd)
    assert isinstance(pred, da.Array) and pred.shape == (len(X),)  # 1-D for one target
    assert pred.chunks == (Xd.chunks[0],)
    np.testing.assert_allclose(pred.compute(), mem.predict(X), rtol=1e-6, atol=1e-9)
    assert dsk.score(Xd, target) == pytest.approx(mem.score(X, target), rel=1e-9)
    w = np.linspace(0.5, 1.5, len(X))
    assert dsk.score(Xd, target, sample_weight=w) == pytest.approx(
        mem.score(X, target, sample_weight=w), rel=1e-9
    )

    Y = np.c_[target, 1.0 - 0.5 * target]  # two targets in memory, X on the cluster
    mem2 = LiftedMLPRegressor(**FEW).fit(X, Y)
    dsk2 = LiftedMLPRegressor(**FEW).fit(Xd, Y)
    _assert_same_fit(mem2, dsk2)
    assert dsk2.predict(Xd).shape == (len(X), 2)
    assert dsk2.score(Xd, Y) == pytest.approx(mem2.score(X, Y), rel=1e-9)


def test_what_the_dask_path_cannot_do_gets_a_clear_error(dask_active):
    X, labels, target = _data(m=200)
    Xd = da.from_array(X, chunks=(100, 6))
    clf = LiftedMLPClassifier(hidden_layer_sizes=(6,), max_iter=1, random_state=0).fit(Xd, labels)
    clf.set_params(prediction="lifted")
    with pytest.raises(ValueError, match=r"prediction='lifted'.*prediction='feedforward'"):
        clf.predict(Xd)
    assert clf.predict(X).shape == (200,)  # the lifted rule in memory still works
    with pytest.raises(ValueError, match=r"backend='cvxpy'.*'numpy' or 'auto'"):
        LiftedMLPClassifier(backend="cvxpy", max_iter=1).fit(Xd, labels)
    with pytest.raises(ValueError, match=r"no fast path \(activations \['sign'\]"):
        LiftedMLPClassifier(activation="sign", max_iter=1).fit(Xd, labels)
    with pytest.raises(TypeError, match=r"partial_fit learns from rows in memory"):
        LiftedMLPClassifier(solver="minibatch").partial_fit(Xd, labels, classes=["ant", "bee"])
    with pytest.raises(TypeError, match=r"partial_fit learns from rows in memory"):
        LiftedMLPRegressor(solver="minibatch").partial_fit(Xd, target)
    with pytest.raises(ValueError, match=r"chunked along rows only.*rechunk"):
        LiftedMLPClassifier(max_iter=1).fit(da.from_array(X, chunks=(100, 3)), labels)
    with pytest.raises(ValueError, match=r"one entry per row of X \(200 rows\), got 150"):
        LiftedMLPRegressor(max_iter=1).fit(Xd, target[:150])
    with pytest.raises(ValueError, match="multi-output classification"):
        LiftedMLPClassifier(max_iter=1).fit(Xd, np.c_[labels, labels])
    with pytest.raises(ValueError, match="LiftedMLPRegressor"):
        LiftedMLPClassifier(max_iter=1).fit(Xd, target)
    with pytest.raises(ValueError, match="at least 2 classes"):
        LiftedMLPClassifier(max_iter=1).fit(Xd, np.full(200, "ant"))
    with pytest.raises(ValueError, match="must be numeric"):
        LiftedMLPRegressor(max_iter=1).fit(Xd, labels)
    with pytest.raises(ValueError, match="must have 6 columns"):
        clf.set_params(prediction="feedforward").predict(da.from_array(X[:, :4], chunks=(50, 4)))
    with pytest.raises(ValueError, match="warm_start=True needs the same classes"):
        clf.set_params(warm_start=True).fit(Xd, np.where(labels == "ant", "bee", labels))
    assert list(clf.classes_) == ["ant", "bee", "cat"]  # the failed refit changed nothing


def _write_data(tmp_path, m=240):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((m, 5)) * [1.0, 2.0, 3.0, 0.5, 4.0] + 2.0
    y = np.argmax(X[:, :3] / [1.0, 2.0, 3.0], axis=1)
    csv, npy = tmp_path / "data.csv", tmp_path / "data.npy"
    np.savetxt(csv, np.c_[X, y], delimiter=",", fmt="%.17g")
    np.save(npy, np.c_[y, X])  # the target first: --target 0
    return X, csv, npy


TRAIN = ["--hidden", "8", "--sweeps", "3", "--tol", "0", "--progress", "none"]


@pytest.mark.parametrize("kind", ["csv", "npy"])
def test_cli_train_on_a_scheduler_writes_the_in_memory_model(dask_client, tmp_path, capsys, kind):
    X, csv, npy = _write_data(tmp_path)
    data, extra = (str(csv), []) if kind == "csv" else (str(npy), ["--target", "0"])
    mem, dsk = tmp_path / "mem.cvxl", tmp_path / "dsk.cvxl"
    assert cli.main(["train", data, "-o", str(mem), *TRAIN, *extra]) == 0
    address = dask_client.scheduler.address
    args = ["train", data, "-o", str(dsk), *TRAIN, *extra, "--scheduler", address]
    assert cli.main([*args, "--chunk-rows", "70"]) == 0
    out = capsys.readouterr().out
    assert f"Dask cluster: scheduler {address}, 2 worker(s)" in out
    assert "in 4 row chunks of up to 70 rows" in out
    a, b = load_model(mem), load_model(dsk)
    assert a.extra["classes"] == b.extra["classes"] == [0, 1, 2]
    assert b.extra["metrics"]["train"]["accuracy"] == pytest.approx(
        a.extra["metrics"]["train"]["accuracy"], abs=1e-12
    )
    np.testing.assert_allclose(b.network.predict(X), a.network.predict(X), rtol=1e-6, atol=1e-9)


def test_cli_train_regresses_a_npy_column_on_a_scheduler(dask_client, tmp_path):
    X, _, _ = _write_data(tmp_path)
    path = tmp_path / "reg.npy"
    np.save(path, np.c_[X, X @ [1.0, -2.0, 0.5, 0.0, 1.0] + 0.25])
    mem, dsk = tmp_path / "mem.cvxl", tmp_path / "dsk.cvxl"
    assert cli.main(["train", str(path), "-o", str(mem), *TRAIN]) == 0
    address = dask_client.scheduler.address
    args = ["train", str(path), "-o", str(dsk), *TRAIN, "--scheduler", address]
    assert cli.main(args) == 0  # the default chunks: the rows split over the two workers
    a, b = load_model(mem), load_model(dsk)
    assert b.extra["task"] == "regress"
    assert b.extra["metrics"]["train"]["r2"] == pytest.approx(a.extra["metrics"]["train"]["r2"])
    np.testing.assert_allclose(b.network.predict(X), a.network.predict(X), rtol=1e-6, atol=1e-9)


def test_cli_errors_on_a_scheduler_are_one_line_with_exit_code_2(
    dask_client, tmp_path, capsys, monkeypatch
):
    _, csv, npy = _write_data(tmp_path, m=60)
    out = str(tmp_path / "m.cvxl")
    assert cli.main(["train", str(csv), "-o", out, *TRAIN, "--chunk-rows", "10"]) == 2
    assert (
        "--chunk-rows applies to training on a cluster; add --scheduler" in capsys.readouterr().err
    )
    address = dask_client.scheduler.address
    args = ["train", str(npy), "-o", out, *TRAIN, "--target", "0", "--scheduler", address]
    assert cli.main([*args, "--validation-fraction", "0.2"]) == 2
    assert "--validation-fraction" in capsys.readouterr().err
    assert cli.main([*args[:-4], "--target", "name", "--scheduler", address]) == 2
    assert "no column names; give a 0-based index" in capsys.readouterr().err
    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT", 1)
    assert cli.main(["train", str(csv), "-o", out, *TRAIN, "--scheduler", "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cvx-lifted train: error: cannot reach the Dask scheduler")
    assert err.count("\n") == 1


def test_cli_chunks_too_large_for_the_workers_name_a_chunk_rows_that_fits(
    dask_client, tmp_path, capsys
):
    """One task on 12,000 rows of a 1900-wide layer needs about 1 GiB: half a worker's limit."""
    rng = np.random.default_rng(0)
    path = tmp_path / "big.npy"
    np.save(path, np.c_[rng.standard_normal((12_000, 5)), rng.integers(0, 3, 12_000)])
    args = ["train", str(path), "-o", str(tmp_path / "m.cvxl"), "--hidden", "1900"]
    args += ["--sweeps", "1", "--scheduler", dask_client.scheduler.address, "--chunk-rows", "12000"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "cvx-lifted train: error: a row chunk of X holds 12000 rows" in err
    assert "On the command line: --chunk-rows " in err

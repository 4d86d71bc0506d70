# SPDX-License-Identifier: Apache-2.0
"""The command line, through ``main([...])`` and through ``python -m cvx_lifted``."""

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier

import cvx_lifted as cl
from cvx_lifted import cli
from cvx_lifted.activations import ACTIVATIONS
from cvx_lifted.io import load_model

REPO = Path(__file__).resolve().parents[1]
FAST = ["--hidden", "8", "--sweeps", "8", "--progress", "none"]


def run(*args, cwd=None):
    """Run ``python -m cvx_lifted ARGS`` in a fresh interpreter."""
    env = dict(os.environ, PYTHONPATH=str(REPO), MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-m", "cvx_lifted", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def one_line_error(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _blobs(labels, m_per=12, seed=0):
    """Well separated 3-D blobs, one per label, with features on different scales."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for k, lab in enumerate(labels):
        center = np.array([4.0 * k, -3.0 * k, 2.0 * (k % 2)])
        X.append(center + 0.3 * rng.standard_normal((m_per, 3)))
        y += [lab] * m_per
    X = np.vstack(X) * [1.0, 10.0, 0.1]
    order = rng.permutation(len(y))
    return X[order], [y[i] for i in order]


def _write_csv(path, X, y, header=("height", "weight", "age", "kind")):
    lines = [",".join(header)] if header else []
    lines += [
        ",".join([*(repr(float(v)) for v in row), str(t)]) for row, t in zip(X, y, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _predicted(text):
    lines = text.strip().splitlines()
    return lines[0], lines[1:]


# ------------------------------------------------------------------ list / verify / help
def test_list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["name", "divergence"]
    assert set(out[1]) <= {"-", " "}
    assert len(out) == len(ACTIVATIONS) + 2
    assert any(line.startswith("relu_fenchel ") for line in out)


def test_list_markdown(capsys):
    assert cli.main(["list", "--markdown"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| name |") and out[1].startswith("| --- |")
    assert any(line.startswith("| `relu` |") for line in out)


def test_verify_relu(capsys):
    assert cli.main(["verify", "relu"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^relu\s+PASS", out, re.M)
    assert out.rstrip().endswith("1/1 activations within tolerance.")


def test_verify_unknown(capsys):
    assert cli.main(["verify", "nosuch"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "unknown activation 'nosuch'" in one_line_error(captured.err)


@pytest.mark.parametrize("command", [None, *cli.COMMANDS])
def test_help(capsys, command):
    assert cli.main([command, "--help"] if command else ["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: cvx-lifted{' ' + command if command else ''}")


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_subprocess_list_and_verify():
    listed = run("list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split()[:2] == ["name", "divergence"]
    ok = run("verify", "relu")
    assert ok.returncode == 0, ok.stderr
    assert "1/1 activations within tolerance." in ok.stdout
    bad = run("verify", "nosuch")
    assert bad.returncode == 2
    assert one_line_error(bad.stderr).startswith("cvx-lifted verify: error: unknown activation")


def test_subprocess_help_of_every_command():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = {
        command: subprocess.Popen(
            [sys.executable, "-m", "cvx_lifted", *([command] if command else []), "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for command in [None, *cli.COMMANDS]
    }
    for command, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (command, err)
        assert out.startswith(f"usage: cvx-lifted{' ' + command if command else ''}")
        assert err == ""


# ------------------------------------------------------------------ train / predict
def test_train_predict_string_labels_round_trip(tmp_path, capsys):
    X, y = _blobs(["red", "green", "blue"])
    data = _write_csv(tmp_path / "train.csv", X, y)
    model = tmp_path / "m.cvxl"
    assert cli.main(["train", str(data), "--out", str(model), *FAST]) == 0
    out = capsys.readouterr().out
    assert "task: classify (detected" in out and "3 classes" in out
    assert "train accuracy: 1.0000" in out
    assert f"model saved to {model}" in out
    saved = load_model(model)
    assert saved.extra["classes"] == ["blue", "green", "red"]
    assert saved.extra["feature_names"] == ["height", "weight", "age"]

    # the training file itself (features selected by name, target column ignored)
    assert cli.main(["predict", str(model), str(data)]) == 0
    header, labels = _predicted(capsys.readouterr().out)
    assert header == "kind" and labels == y

    # features only, in another column order, no target
    shuffled = tmp_path / "new.csv"
    rows = ["age,height,weight"] + [f"{r[2]},{r[0]},{r[1]}" for r in X[:5].tolist()]
    shuffled.write_text("\n".join(rows) + "\n")
    out_file = tmp_path / "pred.csv"
    assert cli.main(["predict", str(model), str(shuffled), "-o", str(out_file)]) == 0
    assert "wrote 5 prediction(s)" in capsys.readouterr().out
    assert _predicted(out_file.read_text()) == ("kind", y[:5])

    assert cli.main(["predict", str(model), str(shuffled), "--proba"]) == 0
    header, rows = _predicted(capsys.readouterr().out)
    assert header == "blue,green,red"
    P = np.array([[float(v) for v in r.split(",")] for r in rows])
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-9)
    assert [["blue", "green", "red"][k] for k in P.argmax(axis=1)] == y[:5]

    # a header that names some of the features but not all: an error, not columns by position
    renamed = tmp_path / "renamed.csv"
    rows = ["age,height,mass"] + [f"{r[2]},{r[0]},{r[1]}" for r in X[:5].tolist()]
    renamed.write_text("\n".join(rows) + "\n")
    assert cli.main(["predict", str(model), str(renamed)]) == 2
    assert "missing feature column(s) 'weight'" in capsys.readouterr().err
    # a header that names none of them: by position, and said so
    generic = tmp_path / "generic.csv"
    rows = ["x0,x1,x2"] + [",".join(map(str, r)) for r in X[:5].tolist()]
    generic.write_text("\n".join(rows) + "\n")
    assert cli.main(["predict", str(model), str(generic)]) == 0
    captured = capsys.readouterr()
    assert "names none of the model's features" in captured.err
    assert _predicted(captured.out) == ("kind", y[:5])


def test_train_predict_integer_labels_without_header(tmp_path, capsys):
    X, y = _blobs([3, 7, 11], seed=1)
    data = _write_csv(tmp_path / "d.csv", X, y, header=None)
    model = tmp_path / "ints"
    assert cli.main(["train", str(data), "--out", str(model), *FAST, "--seed", "2"]) == 0
    capsys.readouterr()
    features = tmp_path / "x.csv"
    features.write_text("\n".join(",".join(repr(v) for v in r) for r in X.tolist()) + "\n")
    assert cli.main(["predict", f"{model}.cvxl", str(features), "--lifted"]) == 0
    header, labels = _predicted(capsys.readouterr().out)
    assert header == "label" and labels == [str(t) for t in y]


def test_train_regression_and_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 2)) * [1.0, 100.0]
    target = 3.0 + 2.0 * X[:, 0] - 0.01 * X[:, 1] + 0.01 * rng.standard_normal(50)
    np.savez(tmp_path / "reg.npz", X=X, y=target)
    model = tmp_path / "reg.cvxl"
    # 40 sweeps: the 8-unit network then fits to RMSE ~0.1, so the last check below is about the
    # scale of the predictions (original units), not about a marginal fit
    argv = ["train", str(tmp_path / "reg.npz"), "-o", str(model), *FAST, "--sweeps", "40"]
    assert cli.main([*argv, "--validation-fraction", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "task: regress (detected" in out and "validation R^2" in out
    r2 = float(re.search(r"train R\^2: ([-\d.]+)", out).group(1))
    assert r2 > 0.9
    np.savez(tmp_path / "new.npz", X=X[:4])
    assert cli.main(["predict", str(model), str(tmp_path / "new.npz")]) == 0
    header, values = _predicted(capsys.readouterr().out)
    assert header == "prediction"
    np.testing.assert_allclose([float(v) for v in values], cl.load(model).predict(X[:4]).ravel())
    np.testing.assert_allclose([float(v) for v in values], target[:4], atol=0.5)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_train_is_the_estimator_on_standardised_features(tmp_path, capsys):
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from cvx_lifted import LiftedMLPClassifier, LiftedMLPRegressor, defaults

    X, y = _blobs(["red", "green", "blue"], seed=4)
    data = _write_csv(tmp_path / "c.csv", X, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli.main(["train", str(data), "--out", str(tmp_path / "c.cvxl"), *FAST]) == 0
    assert "stopped by max_iter" in capsys.readouterr().out
    assert not caught  # no ConvergenceWarning: train says why it stopped instead
    saved = load_model(tmp_path / "c.cvxl")
    clf = LiftedMLPClassifier(hidden_layer_sizes=(8,), max_iter=8, random_state=defaults.SEED)
    pipe = make_pipeline(StandardScaler(), clf).fit(X, y)
    # the saved network takes raw features: the scaling is folded into its first layer
    np.testing.assert_allclose(saved.network.predict(X), pipe.predict_proba(X), atol=1e-10)
    assert saved.extra["classes"] == clf.classes_.tolist()
    assert saved.extra["estimator"]["class"] == "LiftedMLPClassifier"
    assert saved.extra["estimator"]["params"]["hidden_layer_sizes"] == [8]
    assert saved.extra["estimator"]["params"]["random_state"] == defaults.SEED
    assert cli.main(["predict", str(tmp_path / "c.cvxl"), str(data)]) == 0
    assert _predicted(capsys.readouterr().out)[1] == pipe.predict(X).tolist()

    rng = np.random.default_rng(1)
    Xr = rng.standard_normal((40, 2)) * [1.0, 50.0] + [2.0, -100.0]
    yr = 1000.0 + 300.0 * Xr[:, 0] - 2.0 * Xr[:, 1] + rng.standard_normal(40)
    np.savez(tmp_path / "r.npz", X=Xr, y=yr)
    assert cli.main(["train", str(tmp_path / "r.npz"), "-o", str(tmp_path / "r"), *FAST]) == 0
    reg = TransformedTargetRegressor(
        make_pipeline(StandardScaler(), LiftedMLPRegressor(hidden_layer_sizes=(8,), max_iter=8,
                                                           random_state=defaults.SEED)),
        transformer=StandardScaler(),
    ).fit(Xr, yr)  # fmt: skip
    got = cl.load(tmp_path / "r.cvxl").predict(Xr).ravel()
    np.testing.assert_allclose(got, reg.predict(Xr), rtol=1e-9)
    assert np.corrcoef(got, yr)[0, 1] > 0.99


def test_train_scores_the_validation_rows_after_every_sweep(tmp_path, capsys):
    X, y = _blobs(["b", "a", "c"], m_per=20, seed=5)
    data = _write_csv(tmp_path / "d.csv", X, y)
    argv = ["train", str(data), "-o", str(tmp_path / "m"), "--hidden", "8", "--sweeps", "3"]
    assert cli.main([*argv, "--progress", "lines", "--validation-fraction", "0.25"]) == 0
    out = capsys.readouterr().out
    sweeps = re.findall(r"^  sweep +(\d+)  objective \S+  validation ([\d.]+)$", out, re.M)
    assert [int(k) for k, _ in sweeps] == [0, 1, 2, 3]
    final = re.search(r"^validation accuracy: ([\d.]+)$", out, re.M).group(1)
    assert sweeps[-1][1] == final  # the last sweep's score is the saved model's
    history = load_model(tmp_path / "m.cvxl").network.history
    assert [f"{v:.4f}" for v in history.validation] == [v for _, v in sweeps]


def test_train_with_the_minibatch_solver_reports_every_epoch(tmp_path, capsys):
    X, y = _blobs(["b", "a", "c"], m_per=40, seed=6)
    data = _write_csv(tmp_path / "d.csv", X, y)
    argv = ["train", str(data), "-o", str(tmp_path / "m"), "--hidden", "8", "--sweeps", "4"]
    argv += ["--solver", "minibatch", "--batch-size", "30", "--validation-fraction", "0.25"]
    assert cli.main([*argv, "--progress", "lines", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    epochs = re.findall(r"^  epoch +(\d+)  objective \S+  validation ([\d.]+)$", out, re.M)
    assert [int(k) for k, _ in epochs] == [0, 1, 2, 3, 4]
    assert float(re.search(r"^train accuracy: ([\d.]+)$", out, re.M).group(1)) >= 0.9
    network = load_model(tmp_path / "m.cvxl").network
    assert set(network.history.paths.values()) == {"minibatch"}
    assert len(network.history.objective) == 5
    assert network.lam.tolist() == [3.0, 1.0]  # --lam auto (the default) follows --solver


def test_train_rho_auto_follows_the_training_rows(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cl.defaults, "MINIBATCH_RHO_ROWS", 30)  # 15,000 by default
    X, y = _blobs(["b", "a", "c"], m_per=40, seed=6)
    data = _write_csv(tmp_path / "d.csv", X, y)
    argv = ["train", str(data), "--hidden", "8", "--sweeps", "1", "--solver", "minibatch"]
    argv += ["--batch-size", "30", "--validation-fraction", "0.25", "--progress", "none"]
    assert cli.main([*argv, "-o", str(tmp_path / "auto")]) == 0
    rho = load_model(tmp_path / "auto.cvxl").network.rho
    assert rho.tolist() == pytest.approx([cl.defaults.RHO * 30 / 90] * 2)  # 90 training rows
    out = capsys.readouterr().out
    assert f"  lam 3, 1, rho {rho[0]:g}\n" in out  # what "auto" came to
    assert "up to 1 epoch of mini-batch BCD" in out and "s: 1 epoch, stopped" in out
    assert cli.main([*argv, "-o", str(tmp_path / "fixed"), "--rho", "0.01"]) == 0
    assert load_model(tmp_path / "fixed.cvxl").network.rho.tolist() == [0.01, 0.01]
    capsys.readouterr()
    assert cli.main([*argv, "-o", str(tmp_path / "bad"), "--rho", "-1"]) == 2
    assert "argument --rho: expected a non-negative number" in capsys.readouterr().err


@pytest.mark.parametrize(("rows_from", "unit"), [(100, "epoch"), (10_000, "sweep")])
def test_train_solver_auto_says_which_solver_trains(tmp_path, capsys, monkeypatch, rows_from, unit):
    monkeypatch.setattr(cl.defaults, "MINIBATCH_ROWS", rows_from)  # 5,000 by default
    X, y = _blobs(["b", "a", "c"], m_per=40, seed=6)
    data = _write_csv(tmp_path / "d.csv", X, y)
    argv = ["train", str(data), "-o", str(tmp_path / "m"), "--hidden", "8", "--sweeps", "2"]
    assert cli.main([*argv, "--batch-size", "30", "--progress", "lines", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    solver = {"epoch": "mini-batch BCD", "sweep": "full-batch BCD"}[unit]
    assert f"on 120 rows, up to 2 {unit}s of {solver}" in out
    assert re.findall(rf"^  {unit} +(\d+)  objective", out, re.M) == ["0", "1", "2"]
    assert re.search(rf"^trained in [\d.]+ s: 2 {unit}s, stopped by max_iter", out, re.M)
    paths = set(load_model(tmp_path / "m.cvxl").network.history.paths.values())
    assert (paths == {"minibatch"}) == (unit == "epoch")


def test_train_minibatch_on_a_cluster_is_refused(tmp_path, capsys):
    X, y = _blobs(["b", "a"], m_per=6)
    data = _write_csv(tmp_path / "d.csv", X, y)
    argv = ["train", str(data), "-o", str(tmp_path / "m"), "--solver", "minibatch"]
    assert cli.main([*argv, "--scheduler", "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "--solver minibatch trains in memory" in err and "--solver bcd" in err
    assert not (tmp_path / "m.cvxl").exists()


def test_train_on_a_dataset_reports_test_accuracy(tmp_path, capsys):
    model = tmp_path / "digits.cvxl"
    argv = ["train", "digits", "--out", str(model), "--hidden", "20", "--sweeps", "3"]
    assert cli.main([*argv, "--progress", "lines", "--plot", str(tmp_path / "p.png")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  sweep   3  objective", out, re.M)
    assert re.search(r"^test accuracy: 0\.\d{4}$", out, re.M)
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_subprocess_train_then_predict(tmp_path):
    X, y = _blobs(["b", "a"], seed=3)
    data = _write_csv(tmp_path / "train.csv", X, y)
    proc = run("train", data, "--out", tmp_path / "m.cvxl", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert "train accuracy: 1.0000" in proc.stdout
    proc = run("predict", tmp_path / "m.cvxl", data)
    assert proc.returncode == 0, proc.stderr
    assert _predicted(proc.stdout) == ("kind", y)


# ------------------------------------------------------------------ bad input
@pytest.fixture
def files(tmp_path):
    X, y = _blobs(["x", "y"], m_per=6)
    _write_csv(tmp_path / "d.csv", X, y)
    net = cl.LiftedNetwork([3, 4, 2], output="simplex_xent").initialize(0)
    model = net.save(tmp_path / "m.cvxl")
    (tmp_path / "ragged.csv").write_text("a,b,c\n1,2,3\n4,5\n")
    (tmp_path / "two.csv").write_text("1,2\n3,4\n")
    (tmp_path / "junk.cvxl").write_bytes(model.read_bytes()[:100])
    np.savez(tmp_path / "d.npz", X=X, y=np.arange(len(X)) % 2)
    (tmp_path / "const.csv").write_text("a,b,y\n1,2,1.5\n3,4,1.5\n5,6,1.5\n")
    (tmp_path / "one.csv").write_text("a,b,y\n1,2,x\n3,4,x\n")
    (tmp_path / "broken_module.py").write_text("raise RuntimeError('not today')\n")
    return tmp_path


BAD = [
    (["train", "missing.csv", "--out", "m"], "neither a data file nor a dataset name"),
    (["train", "ragged.csv", "--out", "m"], "line 3 has 2 columns, expected 3"),
    (["train", "digitz", "--out", "m"], "neither a data file nor a dataset name"),
    (["train", "d.csv", "--out", "m", "--activation", "nosuch"], "unknown activation 'nosuch'"),
    (["train", "d.csv", "--out", "m", "--target", "zzz"], "no column named 'zzz'"),
    (["train", "d.csv", "--out", "m", "--task", "regress"], "non-numeric values"),
    (["train", "mnist", "--out", "m", "--data-dir", "nowhere"], "MNIST data not found"),
    (["train", "d.csv"], "the following arguments are required: --out"),
    (["train", "d.csv", "--out", "m", "--hidden", "0"], "expected a positive integer"),
    (["train", "d.csv", "--out", "nodir/m.cvxl"], "does not exist"),
    (["predict", "m.cvxl", "two.csv"], "has 2 feature column(s), the model expects 3"),
    (["predict", "junk.cvxl", "d.csv"], "not a zip archive"),
    (["predict", "nope.cvxl", "d.csv"], "no model file"),
    (["predict", "m.cvxl", "ragged.csv"], "line 3 has 2 columns"),
    (["predict", "m.cvxl", "missing.csv"], "no such data file"),
    (["verify", "nosuch"], "unknown activation 'nosuch'"),
    (["train", "d.csv", "--out", "m", "--threads", "-1"], "expected 0 (automatic) or a thread"),
    (["train", "d.csv", "--out", "m", "--threads", "1000"], "core(s) this process may use"),
    (["train", "d.csv", "--out", "m", "--seed", "-3"], "expected a seed in [0, 2**32)"),
    (["demo", "--seed", "4294967296"], "expected a seed in [0, 2**32)"),
    (["train", "d.csv", "--out", "m", "--plot", "p.xyz"], "matplotlib cannot write .xyz files"),
    (["train", "digits", "--out", "m", "--target", "3"], "comes with its labels"),
    (["train", "d.npz", "--out", "m", "--target", "3"], "holds its target as the array y"),
    (["train", "const.csv", "--out", "m"], "the target is constant ([1.5]); nothing to learn"),
    (["train", "one.csv", "--out", "m"], "the target has a single class ('x'); nothing to learn"),
    (["train", "d.csv", "--out", "m", "--activation", "nosuch"], "--import MODULE"),
    (
        ["train", "d.csv", "--out", "m", "--activation", "sign", "--solver", "minibatch"],
        "train it with --solver bcd",
    ),
    (["train", "d.csv", "--out", "m", "--import", "broken_module"], "raised RuntimeError"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(files, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(files)
    monkeypatch.delenv("CVX_LIFTED_DATA", raising=False)
    assert cli.main(argv) == 2
    line = one_line_error(capsys.readouterr().err)
    assert line.startswith(f"cvx-lifted {argv[0]}: error: ")
    assert message in line


def test_subprocess_bad_input(files):
    proc = run("predict", "junk.cvxl", "d.csv", cwd=files)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "not a zip archive" in one_line_error(proc.stderr)
    proc = run("train", "mnist", "--out", "m", "--data-dir", files / "none", cwd=files)
    assert proc.returncode == 2
    assert "MNIST data not found" in one_line_error(proc.stderr)


# ------------------------------------------------------------------ demo
def _accuracies(out):
    lifted = float(re.search(r"lifted network \(feed-forward rule\)\s+([\d.]+)", out).group(1))
    mlp = float(re.search(r"scikit-learn MLPClassifier\s+([\d.]+)", out).group(1))
    return lifted, mlp


class _ShortMLP:
    """MLPClassifier with 20 epochs: fast, and it does not converge."""

    def __new__(cls, **kw):
        return MLPClassifier(max_iter=20, **kw)


def test_demo_runs_and_reports_both_accuracies_honestly(tmp_path, capsys, monkeypatch):
    import sklearn.neural_network

    from cvx_lifted.datasets import load_digits

    monkeypatch.setattr(sklearn.neural_network, "MLPClassifier", _ShortMLP)
    argv = ["demo", "--sweeps", "2", "--hidden", "30", "--out", str(tmp_path / "out")]
    assert cli.main([*argv, "--progress", "lines"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  sweep   2  objective", out, re.M)
    assert "did NOT converge within max_iter=20 epochs" in out
    lifted, mlp = _accuracies(out)

    # the same computations, done independently
    X_tr, y_tr, X_te, y_te = load_digits()
    net = cl.LiftedNetwork(
        [64, 30, 10], activation=cli.DEMO_ACTIVATION, output=cli.DEMO_OUTPUT,
        lam=cli.DEMO_LAM, rho=cli.DEMO_RHO,
    )  # fmt: skip
    net.fit(X_tr, np.eye(10)[y_tr], max_iter=2, random_state=cli.DEMO_SEED)
    assert lifted == pytest.approx(np.mean(net.predict(X_te).argmax(1) == y_te), abs=6e-5)
    ref = MLPClassifier(hidden_layer_sizes=(30,), max_iter=20, random_state=cli.DEMO_SEED)
    with pytest.warns(Warning):
        ref.fit(X_tr, y_tr)
    assert mlp == pytest.approx(ref.score(X_te, y_te), abs=6e-5)
    plot = tmp_path / "out" / cli.DEMO_PLOT
    assert f"plot saved to {plot}" in out
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_demo_default_settings_reach_90_percent(capsys):
    assert cli.main(["demo", "--no-plot", "--progress", "none"]) == 0
    out = capsys.readouterr().out
    lifted, mlp = _accuracies(out)
    assert lifted >= 0.90, out
    assert 0.0 <= mlp <= 1.0
    assert "plot saved" not in out


# ------------------------------------------------------------------ helpers a Python user may call
@pytest.mark.parametrize("output", ["simplex_xent", "squared"])
def test_folding_standardization_keeps_predictions(output):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 3)) * [1.0, 50.0, 0.01] + [3.0, -20.0, 1.0]
    mean, scale = X.mean(axis=0), X.std(axis=0)
    net = cl.LiftedNetwork([3, 4, 2], output=output).initialize(1)
    before = net.predict((X - mean) / scale)
    cli.fold_input_standardization(net, mean, scale)
    np.testing.assert_allclose(net.predict(X), before, rtol=1e-12, atol=1e-12)
    if output == "squared":
        y_mean, y_scale = np.array([5.0, -1.0]), np.array([10.0, 0.5])
        cli.fold_output_standardization(net, y_mean, y_scale)
        np.testing.assert_allclose(net.predict(X), before * y_scale + y_mean, rtol=1e-12)
    else:
        with pytest.raises(ValueError, match="identity"):
            cli.fold_output_standardization(net, np.zeros(2), np.ones(2))


# ------------------------------------------------------------------ the CLI never lies
def test_verify_of_a_closed_form_only_name_fails_with_the_reason(capsys):
    assert cli.main(["verify", "softplus"]) == 2
    captured = capsys.readouterr()
    assert "0/0" not in captured.out
    line = one_line_error(captured.err)
    assert "softplus has a closed form only (no convex program)" in line
    assert cli.main(["verify", "relu", "sin", "softplus"]) == 2
    assert "sin, softplus have a closed form only" in capsys.readouterr().err


def test_verify_all_says_what_it_skipped(capsys, monkeypatch):
    from cvx_lifted.cli import catalogue

    reports = [("softplus", "closed form only"), ("sin", "closed form only")]
    monkeypatch.setattr(catalogue, "verify_all", lambda *a, **k: reports)
    assert cli.main(["verify"]) == 0
    out = capsys.readouterr().out
    assert "0/0 activations within tolerance (2 skipped, closed form only: softplus, sin)." in out


def _csv(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('a,b,y\n1,2,0\n1,"2\n3",0\n4,5,1\n', r"line 3, column 'b': '2\n3' is not a number"),
        ("a,b,y\n1,1e300,0\n2,3,1\n3,4,0\n", "column 'b' of the features holds values as large"),
    ],
    ids=["multi-line-cell", "1e300"],
)
def test_train_refuses_what_it_cannot_read_faithfully(tmp_path, capsys, text, message):
    data = _csv(tmp_path / "d.csv", text)
    assert cli.main(["train", str(data), "-o", str(tmp_path / "m"), *FAST]) == 2
    captured = capsys.readouterr()
    assert message in one_line_error(captured.err)
    assert "training" not in captured.out and not (tmp_path / "m.cvxl").exists()


def test_plot_name_without_suffix_and_classes_only_in_validation(tmp_path, capsys):
    X, y = _blobs(["a", "b"], m_per=20)
    X = np.vstack([X, X[:1] + 10.0])
    data = _write_csv(tmp_path / "d.csv", X, [*y, "rare"])
    argv = ["train", str(data), "-o", str(tmp_path / "m"), *FAST, "--plot", str(tmp_path / "p")]
    # the one "rare" row falls in the validation rows with this seed
    assert cli.main([*argv, "--validation-fraction", "0.5", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert f"plot saved to {tmp_path / 'p.png'}" in out and (tmp_path / "p.png").is_file()
    assert "3 classes" in out
    assert "note: 1 class(es) occur only in the validation rows (rare)" in out
    assert load_model(tmp_path / "m.cvxl").extra["classes"] == ["a", "b"]


def test_many_distinct_whole_number_targets_are_regressed(tmp_path, capsys):
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    lines = ["a,b,c,y"] + [
        f"{r[0]:.17g},{r[1]:.17g},{r[2]:.17g},{t:g}" for r, t in zip(X, y, strict=True)
    ]
    data = _csv(tmp_path / "diabetes.csv", "\n".join(lines[:301]) + "\n")
    assert cli.main(["train", str(data), "-o", str(tmp_path / "m"), *FAST]) == 0
    out = capsys.readouterr().out
    distinct = np.unique(y[:300]).size
    assert f"task: regress (detected: {distinct} distinct whole numbers in 300 rows" in out
    assert "--task classify" in out
    assert load_model(tmp_path / "m.cvxl").extra["task"] == "regress"


def test_integer_targets_beyond_int64_are_regressed(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 2))
    y = 1e19 + 1e18 * X[:, 0]  # integer-valued floats, beyond int64
    lines = ["a,b,y"] + [f"{r[0]:.17g},{r[1]:.17g},{int(t)}" for r, t in zip(X, y, strict=True)]
    data = _csv(tmp_path / "big.csv", "\n".join(lines) + "\n")
    assert cli.main(["train", str(data), "-o", str(tmp_path / "m"), *FAST]) == 0
    out = capsys.readouterr().out
    assert "task: regress (detected" in out
    model = load_model(tmp_path / "m.cvxl")
    assert model.extra["task"] == "regress"
    assert np.corrcoef(model.network.predict(X).ravel(), y)[0, 1] > 0.9


def test_outputs_are_checked_before_training(files, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(files)
    (files / "afile").write_text("not a folder")
    cases = [
        (["train", "d.csv", "-o", "m2", "--plot", "nodir/p.png"], "--plot nodir/p.png"),
        (["train", "d.csv", "-o", "afile/m.cvxl"], "afile is not a folder"),
        (["train", "d.csv", "-o", "."], "is a folder"),
        (["predict", "m.cvxl", "d.csv", "-o", "nodir/p.csv"], "nodir does not exist"),
        (["demo", "--out", "afile/sub"], "afile is not a folder"),
    ]
    for argv, message in cases:
        assert cli.main([*argv, *(FAST if argv[0] == "train" else [])]) == 2, argv
        captured = capsys.readouterr()
        assert message in one_line_error(captured.err), argv
        assert "training" not in captured.out and "lifted network" not in captured.out
    assert not (files / "m2.cvxl").exists()


def test_an_interrupted_train_saves_nothing(files, capsys, monkeypatch):
    from cvx_lifted.bcd import BCDSolver

    def interrupt(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(BCDSolver, "_state_step", interrupt)
    monkeypatch.chdir(files)
    assert cli.main(["train", "d.csv", "-o", "m3", *FAST]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (files / "m3.cvxl").exists()
    assert not [p for p in files.iterdir() if p.name.startswith(".m3")]


def test_the_readme_first_command_writes_the_demo_plot(tmp_path, monkeypatch, capsys):
    import tomllib

    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- setup-commands:begin -->")[1].split("<!-- setup-commands:end -->")[0]
    first = [line for line in block.splitlines() if line.startswith("python3 -m venv")][0]
    assert first.endswith("pip install . && cvx-lifted demo")  # no flag turns the plot off
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("matplotlib") for d in deps)  # so `pip install .` brings it
    monkeypatch.chdir(tmp_path)
    assert cli.main(["demo", "--sweeps", "2", "--progress", "none"]) == 0
    plot = tmp_path / cli.DEMO_PLOT
    assert f"plot saved to {cli.DEMO_PLOT}" in capsys.readouterr().out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_subcommand_takes_import(capsys):
    parser = cli.build_parser()
    required = {"train": ["d.csv", "-o", "m"], "predict": ["m.cvxl", "d.csv"]}
    for command in cli.COMMANDS:
        argv = [command, *required.get(command, []), "--import", "json", "--import", "csv"]
        assert parser.parse_args(argv).imports == ["json", "csv"], command
    assert parser.parse_args(["--import", "json", "list"]).imports_global == ["json"]
    assert cli.main(["--import", "no_such_module_here", "list"]) == 2
    assert "cannot import the module 'no_such_module_here'" in one_line_error(
        capsys.readouterr().err
    )


def test_an_unwritable_output_folder_is_reported_before_training(files, capsys, monkeypatch):
    import tempfile

    def read_only(*args, **kwargs):  # what a read-only folder does (tests may run as root)
        raise PermissionError(13, "Permission denied")

    monkeypatch.chdir(files)
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert cli.main(["train", "d.csv", "-o", "m4", *FAST]) == 2
    captured = capsys.readouterr()
    assert "cannot write --out" in one_line_error(captured.err)
    assert "is not writable (Permission denied)" in captured.err
    assert "training" not in captured.out
    assert cli.main(["predict", "m.cvxl", "d.csv", "-o", "p.csv"]) == 2
    assert "cannot write -o/--output p.csv" in capsys.readouterr().err
    assert cli.main(["demo", "--out", "plots/new", "--sweeps", "1"]) == 2
    captured = capsys.readouterr()
    assert "cannot use --out plots/new" in one_line_error(captured.err)
    assert "is not writable (Permission denied)" in captured.err
    assert "digits" not in captured.out  # nothing was trained


def test_the_demo_reports_a_read_only_file_system_before_training(capsys):
    proc = Path("/proc")
    if not proc.is_dir():
        pytest.skip("needs /proc (Linux)")
    assert cli.main(["demo", "--out", "/proc/cvx-lifted-demo", "--sweeps", "1"]) == 2
    captured = capsys.readouterr()
    assert "cannot use --out /proc/cvx-lifted-demo: /proc is not writable" in one_line_error(
        captured.err
    )
    assert "digits" not in captured.out

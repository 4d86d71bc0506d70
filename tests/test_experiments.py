# SPDX-License-Identifier: Apache-2.0
"""The §7 reproduction: end to end on a tiny subset, outputs, resumability, bad input."""

import argparse
import csv
import json

import numpy as np
import pytest

pytest.importorskip("torch")

from cvx_lifted import experiments as ex  # noqa: E402
from cvx_lifted.datasets import load_digits  # noqa: E402


@pytest.fixture
def tiny_loader(monkeypatch):
    """Replace the data loader by 500 training / 200 test rows of scikit-learn's digits."""
    X, y, Xt, yt = load_digits(dtype=np.float32)
    calls = []

    def fake(name, path=None, **kw):
        calls.append(name)
        return X[:500], y[:500], Xt[:200], yt[:200]

    monkeypatch.setattr(ex, "load_dataset", fake)
    return calls


TINY = {
    "architectures": [(16,)],
    "seeds": 2,
    "epochs": 2,
    "sweeps": 1,
    "learning_rates": ["paper:1e-5", "tuned"],
    "lr_grid": (0.1, 0.3),
    "tune_trials": 2,
    "tune_sweeps": 1,
    "progress": False,
}


def _n_lines(path):
    return len(path.read_text().splitlines())


def test_quick_reproduction_end_to_end_and_resume(tmp_path, tiny_loader):
    out = tmp_path / "out"
    res = ex.reproduce("mnist-10k", out_dir=out, quick=True, **TINY)
    assert tiny_loader == ["mnist-10k"]
    n_runs = 2 * 4 * 2  # seeds x inits x learning rates
    assert len(res.runs) == n_runs and len(res.pretrain) == 2
    # + lifted pretraining x 2, λ search, 2 standard-rate candidates
    assert res.computed == n_runs + 2 + 1 + 2 and res.reused == 0
    assert res.tuning["lambda"]["sampler"] in ("gp", "tpe")
    assert res.tuning["learning_rate"]["chosen"] in (0.1, 0.3)
    # Markdown in the paper's layout
    md = res.paths["markdown"].read_text()
    assert "## Table 1, η = 0.001 (the paper's η = 1e-05" in md
    header = "| Architecture | Our Model | NN[Normal] | NN[Xavier] | NN[σ²-scale] | NN[Lifted] |"
    assert header in md
    assert "| 16 | " in md and " ± " in md
    # CSV: one row per run and epoch
    with res.paths["csv"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == n_runs * 3
    assert {r["init"] for r in rows} == {"normal", "xavier", "variance_scaling", "lifted"}
    assert all(0.0 <= float(r["test_accuracy"]) <= 1.0 for r in rows)
    with res.paths["pretrain_csv"].open() as fh:
        assert len(list(csv.DictReader(fh))) == 2
    # JSON
    data = json.loads(res.paths["json"].read_text())
    assert len(data["runs"]) == n_runs
    assert data["summary"]["phase_seconds"]["lifted_pretraining"] > 0
    assert data["config"]["train"]["epochs"] == 2
    # PNG figures, one per learning rate
    if pytest.importorskip("matplotlib"):
        assert len(res.paths["figures"]) == 2
        for fig in res.paths["figures"]:
            assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the lifted initialisation starts where the lifted model is
    lifted = [r for r in res.runs if r["init"] == "lifted" and r["seed"] == 0]
    pre = next(p for p in res.pretrain if p["seed"] == 0)
    assert lifted[0]["test_accuracy"][0] == pytest.approx(pre["test_accuracy"], abs=1e-6)

    # resume: nothing is recomputed, the store does not grow
    lines = _n_lines(res.paths["store"])
    again = ex.reproduce("mnist-10k", out_dir=out, quick=True, **TINY)
    assert again.computed == 0 and again.reused == n_runs + 2
    assert _n_lines(again.paths["store"]) == lines
    assert [r["test_accuracy"] for r in again.runs] == [r["test_accuracy"] for r in res.runs]

    # an interrupted run (last record lost, a half-written line) is redone, and only it
    store = res.paths["store"]
    kept = store.read_text().splitlines()[:-1]
    store.write_text("\n".join(kept) + '\n{"kind": "sgd", "trunc')
    third = ex.reproduce("mnist-10k", out_dir=out, quick=True, **TINY)
    assert third.computed == 1

    # a changed protocol (more epochs) is a different experiment: SGD runs are redone
    fourth = ex.reproduce("mnist-10k", out_dir=out, quick=True, **{**TINY, "epochs": 3})
    assert fourth.computed == n_runs + 2  # + the two standard-rate candidates
    assert len(fourth.runs[0]["test_accuracy"]) == 4


def test_quick_defaults(tmp_path, tiny_loader, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = ex.reproduce(
        "fashion-mnist", quick=True, inits=["xavier", "lifted"], lifted_rule=False, progress=False
    )
    assert res.out_dir == ex.Path("experiments") / "fashion-mnist-quick"
    assert {r["architecture"] for r in res.runs} == {"300"}
    assert {r["seed"] for r in res.runs} == {0, 1}
    assert len(res.runs[0]["test_accuracy"]) == ex.QUICK["epochs"] + 1
    assert res.tuning["lambda"] is None and res.tuning["learning_rate"] is None
    assert {r["lr"] for r in res.runs} == {1e-3, 1e-4, 0.1}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset": "cifar-10"}, "unknown dataset"),
        ({"inits": ["he"]}, "unknown initialisation"),
        ({"optimizer": "rmsprop"}, "unknown optimizer"),
        ({"learning_rates": ["fast"]}, "learning rate"),
        ({"learning_rates": ["paper:-1"]}, "paper learning rate"),
        ({"architectures": ["300-x"]}, "architecture"),
        ({"head": "squared"}, "head"),
        ({"output_scale": "huge"}, "output_scale"),
        ({"lam": "auto"}, "lam"),
        ({"epochs": 0}, "epochs"),
    ],
)
def test_bad_input(tmp_path, tiny_loader, kwargs, match):
    kwargs = {"dataset": "mnist-10k", **kwargs}
    with pytest.raises(ValueError, match=match):
        ex.reproduce(out_dir=tmp_path, progress=False, **kwargs)
    assert tiny_loader == []  # rejected before any data is read


def test_parsers():
    assert ex.parse_architecture("500-200-100") == (500, 200, 100)
    assert ex.parse_architecture("300") == (300,)
    assert ex.parse_architecture([400, 50]) == (400, 50)
    for bad in ("", "0", "3--", "a-b"):
        with pytest.raises(ValueError):
            ex.parse_architecture(bad)
    rate = ex.parse_learning_rate("paper:1e-6")
    assert rate.value == pytest.approx(1e-4) and rate.paper_eta == 1e-6
    assert "1e-06" in rate.describe() and rate.slug == "paper-1e-06"
    assert ex.parse_learning_rate("tuned").value is None
    assert ex.parse_learning_rate(0.05).value == 0.05
    with pytest.raises(ValueError):
        ex.parse_learning_rate("0")


def _cli(argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    ex.add_reproduce_parser(sub)
    return parser.parse_args(["reproduce", *argv])


def test_cli_glue(tmp_path, tiny_loader, capsys):
    from cvx_lifted.cli import UsageError

    args = _cli(
        [
            "--quick",
            "--out",
            str(tmp_path / "cli"),
            "--architectures",
            "16",
            "--epochs",
            "1",
            "--seeds",
            "1",
            "--lr",
            "paper:1e-5",
            "0.2",
            "--no-progress",
        ]
    )
    assert ex.run_reproduce(args) == 0
    printed = capsys.readouterr().out
    assert "results.md" in printed and "runs.csv" in printed and "results.json" in printed
    for argv, match in (
        (["--inits", "he"], "unknown initialisation"),
        (["--optimizer", "lbfgs"], "unknown optimizer"),
        (["--lr", "fast"], "learning rate"),
        (["--architectures", "3x"], "architecture"),
        (["--lam", "big"], "--lam"),
        (["--output-scale", "big"], "--output-scale"),
    ):
        with pytest.raises(UsageError, match=match):
            ex.run_reproduce(_cli(["--out", str(tmp_path / "bad"), *argv]))
    with pytest.raises(SystemExit):
        _cli(["--dataset", "cifar-10"])
    study = ["--study", "--architectures", "8", "--epochs", "1", "--sweeps", "1", "--no-progress"]
    assert ex.run_reproduce(_cli([*study, "--out", str(tmp_path / "study")])) == 0
    assert "# Study: lifted initialisation" in capsys.readouterr().out


def test_cli_main_if_wired(tmp_path, tiny_loader, capsys):
    from cvx_lifted import cli

    if "reproduce" not in cli.COMMANDS:
        pytest.skip("the reproduce subcommand is not wired into cvx_lifted.cli yet")
    code = cli.main(["reproduce", "--out", str(tmp_path), "--inits", "he"])
    assert code == 2
    assert "unknown initialisation" in capsys.readouterr().err


def test_study_on_the_validation_split(tmp_path, tiny_loader):
    kwargs = {
        "heads": ("simplex_xent",),
        "output_scales": ("none", "balanced"),
        "learning_rates": (0.01, 0.3),
        "epochs": 1,
        "sweeps": 1,
        "out_dir": tmp_path,
        "progress": False,
    }
    res = ex.study_lifted_init("mnist-10k", "16", **kwargs)
    assert len(res["runs"]) == 2 + 2 * 2
    assert "| lifted simplex_xent:balanced |" in res["markdown"]
    assert (tmp_path / "study.md").exists() and (tmp_path / "study.json").exists()
    again = ex.study_lifted_init("mnist-10k", "16", **kwargs)
    assert again["markdown"] == res["markdown"]


SMALL = ["--architectures", "16", "--epochs", "1", "--seeds", "1", "--lr", "paper:1e-5",
         "--inits", "xavier", "--no-progress"]  # fmt: skip


def test_reproduce_writes_to_a_fresh_folder_unless_resume(tmp_path, tiny_loader, monkeypatch,
                                                          capsys):  # fmt: skip
    from cvx_lifted.cli import UsageError

    monkeypatch.chdir(tmp_path)
    committed = tmp_path / "experiments" / "mnist-10k-quick"
    committed.mkdir(parents=True)
    (committed / "results.md").write_text("committed results\n")
    assert ex.run_reproduce(_cli(["--quick", *SMALL])) == 0
    out = capsys.readouterr().out
    fresh = ex.Path("experiments") / "mnist-10k-quick-2"
    assert f"holds an earlier run (--resume continues it); writing to {fresh}" in out
    assert (committed / "results.md").read_text() == "committed results\n"  # untouched
    assert sorted(p.name for p in committed.iterdir()) == ["results.md"]
    assert (tmp_path / fresh / "results.md").exists()
    # an explicit folder with results: refused without --resume, continued with it
    with pytest.raises(UsageError, match="already holds results of an earlier run.*--resume"):
        ex.run_reproduce(_cli(["--quick", "--out", str(fresh), *SMALL]))
    assert ex.run_reproduce(_cli(["--quick", "--out", str(fresh), "--resume", *SMALL])) == 0
    assert "0 run(s) computed" in capsys.readouterr().out
    # --resume without --out continues the default folder
    assert ex.output_folder(None, committed, resume=True) == committed
    assert ex.output_folder(None, committed, resume=False) == committed.with_name(
        "mnist-10k-quick-3"
    )


@pytest.mark.parametrize("study", [False, True])
def test_missing_data_leaves_no_folder_behind(tmp_path, monkeypatch, capsys, study):
    from cvx_lifted import cli

    monkeypatch.chdir(tmp_path)
    argv = ["reproduce", "--quick", "--data-dir", str(tmp_path / "nowhere"), *SMALL]
    assert cli.main([*argv, *(["--study"] if study else [])]) == 2
    assert "MNIST-10k data not found" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    # an existing (empty) output folder is kept, only what the run created is removed
    (tmp_path / "mine").mkdir()
    assert cli.main([*argv, "--out", str(tmp_path / "mine")]) == 2
    assert (tmp_path / "mine").is_dir() and list((tmp_path / "mine").iterdir()) == []


def test_figure_1_legend_does_not_cover_the_curves(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    runs = [
        {"architecture": arch, "init": init, "lr": 1e-3, "seed": seed, "seconds": [1.0] * 6,
         "test_accuracy": list(np.clip(np.linspace(0.1, 0.95, 6) + 0.01 * rng.random(6), 0, 1))}
        for arch in ("300", "500-200-100") for init in ex._INITS for seed in (0, 1)
    ]  # fmt: skip
    res = ex.ReproduceResult(
        out_dir=tmp_path,
        runs=runs,
        pretrain=[
            {"architecture": a, "seed": 0, "test_accuracy": 0.93} for a in ("300", "500-200-100")
        ],
    )
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to inspect it
    path = ex._figure(
        res, "mnist-10k", ex.parse_learning_rate("paper:1e-5"), ["300", "500-200-100"],
        list(ex._INITS), tmp_path / "figure1.png",
    )  # fmt: skip
    assert path.read_bytes()[:4] == b"\x89PNG"
    (fig,) = figures
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    assert len(legend.get_texts()) == len(ex._INITS) + 1  # each initialisation, lifted alone
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = legend.get_window_extent(renderer)
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(renderer))
    monkeypatch.undo()
    plt.close(fig)

# SPDX-License-Identifier: Apache-2.0
"""The paper package (§7 reproduction): end to end on a tiny subset, outputs, resumability,
its configuration, bad input, the command line that drives it, and its place in the layers."""

import ast
import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import cvx_lifted.paper as paper  # noqa: E402
from cvx_lifted import cli  # noqa: E402
from cvx_lifted.cli.reproduce import config_from_args  # noqa: E402
from cvx_lifted.datasets import load_digits  # noqa: E402
from cvx_lifted.paper import report, runs  # noqa: E402
from cvx_lifted.paper.config import ReproduceConfig, StudyConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_loader(monkeypatch):
    """Replace the data loader by 500 training / 200 test rows of scikit-learn's digits."""
    X, y, Xt, yt = load_digits(dtype=np.float32)
    calls = []

    def fake(name, path=None, **kw):
        calls.append(name)
        return X[:500], y[:500], Xt[:200], yt[:200]

    monkeypatch.setattr(runs, "load_dataset", fake)
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
    config = ReproduceConfig("mnist-10k", out_dir=out, quick=True, **TINY)
    res = paper.reproduce(config)
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
    # PNG figures, one per learning rate (matplotlib is a dependency)
    assert len(res.paths["figures"]) == 2
    for fig in res.paths["figures"]:
        assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the lifted initialisation starts where the lifted model is
    lifted = [r for r in res.runs if r["init"] == "lifted" and r["seed"] == 0]
    pre = next(p for p in res.pretrain if p["seed"] == 0)
    assert lifted[0]["test_accuracy"][0] == pytest.approx(pre["test_accuracy"], abs=1e-6)

    # resume: nothing is recomputed, the store does not grow
    lines = _n_lines(res.paths["store"])
    again = paper.reproduce(dataset="mnist-10k", out_dir=out, quick=True, **TINY)  # the same
    assert again.computed == 0 and again.reused == n_runs + 2
    assert _n_lines(again.paths["store"]) == lines
    assert [r["test_accuracy"] for r in again.runs] == [r["test_accuracy"] for r in res.runs]

    # an interrupted run (last record lost, a half-written line) is redone, and only it
    store = res.paths["store"]
    kept = store.read_text().splitlines()[:-1]
    store.write_text("\n".join(kept) + '\n{"kind": "sgd", "trunc')
    third = paper.reproduce(config)
    assert third.computed == 1

    # a changed protocol (more epochs) is a different experiment: SGD runs are redone
    fourth = paper.reproduce(config, epochs=3)
    assert fourth.computed == n_runs + 2  # + the two standard-rate candidates
    assert len(fourth.runs[0]["test_accuracy"]) == 4


def test_quick_defaults(tmp_path, tiny_loader, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = paper.reproduce(
        dataset="fashion-mnist",
        quick=True,
        inits=["xavier", "lifted"],
        lifted_rule=False,
        progress=False,
    )
    assert res.out_dir == Path("experiments") / "fashion-mnist-quick"
    assert {r["architecture"] for r in res.runs} == {"300"}
    assert {r["seed"] for r in res.runs} == {0, 1}
    assert len(res.runs[0]["test_accuracy"]) == paper.QUICK["epochs"] + 1
    assert res.tuning["lambda"] is None and res.tuning["learning_rate"] is None
    assert {r["lr"] for r in res.runs} == {1e-3, 1e-4, 0.1}


BAD_FIELDS = [
    ({"dataset": "cifar-10"}, "unknown dataset"),
    ({"inits": ["he"]}, "unknown initialisation 'he'"),
    ({"inits": []}, "give at least one initialisation"),
    ({"optimizer": "rmsprop"}, "unknown optimizer"),
    ({"learning_rates": ["fast"]}, "learning rate"),
    ({"learning_rates": []}, "give at least one learning rate"),
    ({"learning_rates": ["paper:-1"]}, "paper learning rate"),
    ({"architectures": ["300-x"]}, "architecture"),
    ({"figure_architectures": ["0"]}, "architecture"),
    ({"head": "squared"}, "head"),
    ({"output_scale": "huge"}, "output_scale"),
    ({"output_scale": -2.0}, "output_scale"),
    ({"lam": "auto"}, "lam"),
    ({"lam": 0.0}, "lam"),
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"epochs": 2.5}, "epochs must be a positive integer"),
    ({"sweeps": -1}, "sweeps"),
    ({"seeds": 0}, "seeds"),
    ({"seeds": [0, -1]}, "seeds"),
    ({"tune_trials": -1}, "tune_trials must be an integer >= 0"),
    ({"batch_size": 0}, "batch_size"),
    ({"rho": float("nan")}, "rho"),
    ({"val_fraction": 1.0}, "val_fraction"),
    ({"lr_grid": [0.1, 0.0]}, "lr_grid"),
    ({"threads": 0}, "threads"),
    ({"tune_timeout": -5.0}, "tune_timeout"),
]


@pytest.mark.parametrize(("fields", "match"), BAD_FIELDS, ids=[str(f) for f, _ in BAD_FIELDS])
def test_a_bad_field_is_refused_before_any_data_is_read(tmp_path, tiny_loader, fields, match):
    with pytest.raises(ValueError, match=match):
        ReproduceConfig(**fields)
    with pytest.raises(ValueError, match=match):
        paper.reproduce(out_dir=tmp_path / "out", progress=False, **fields)
    assert tiny_loader == []
    assert not (tmp_path / "out").exists()


def test_the_config_resolves_its_presets_and_normalises_its_fields():
    quick = ReproduceConfig(quick=True, inits=["xavier", "lifted"])
    assert quick.hidden_layers == ((300,),) and quick.seed_list == (0, 1)
    assert (quick.n_epochs, quick.n_sweeps, quick.n_tune_trials) == (3, 2, 0)
    assert quick.train_rows == 3000 and quick.inits == ("xavier", "lifted")
    assert [r.label for r in quick.rates] == ["paper:1e-05", "paper:1e-06", "0.1"]
    assert quick.default_out_dir == Path("experiments") / "mnist-10k-quick"
    full = ReproduceConfig()
    assert full.hidden_layers == paper.ARCHITECTURES and full.seed_list == tuple(range(5))
    assert (full.n_epochs, full.n_sweeps, full.n_tune_trials, full.train_rows) == (17, 8, 12, None)
    # a field given explicitly wins over the preset
    assert ReproduceConfig(quick=True, epochs=5, seeds=[3, 7]).n_epochs == 5
    assert ReproduceConfig(quick=True, seeds=[3, 7]).seed_list == (3, 7)
    # two spellings of one run are one configuration (equal, same hash: frozen, hashable)
    a = ReproduceConfig(dataset="Fashion_MNIST", architectures=["300", "500,200"], lam=2,
                        output_scale="2.5", out_dir="x", seeds=np.int64(2))  # fmt: skip
    b = ReproduceConfig(dataset="fashion-mnist", architectures=[(300,), (500, 200)], lam=2.0,
                        output_scale=2.5, out_dir=Path("x"), seeds=2)  # fmt: skip
    assert a == b and hash(a) == hash(b)
    assert a.architectures == ((300,), (500, 200)) and a.out_dir == Path("x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.epochs = 3  # type: ignore[misc]
    assert dataclasses.replace(a, epochs=3).n_epochs == 3


def test_reproduce_takes_a_config_or_the_fields_of_one(tmp_path, tiny_loader):
    with pytest.raises(TypeError, match="epoch"):
        paper.reproduce(epoch=3)  # a misspelt field is not silently ignored
    with pytest.raises(TypeError, match="epoch"):
        paper.reproduce(ReproduceConfig(), epoch=3)
    assert tiny_loader == []


def test_study_config():
    cfg = StudyConfig(hidden="32-16", learning_rates=0.1, heads=["softmax_xent"])
    assert cfg.hidden_layers == (32, 16) and cfg.learning_rates == (0.1,)
    assert cfg.default_out_dir == Path("experiments") / "mnist-10k-study"
    for fields, match in (
        ({"heads": ["squared"]}, "unknown head"),
        ({"output_scales": ["huge"]}, "unknown output scale"),
        ({"learning_rates": [0.1, -1.0]}, "learning_rates"),
        ({"hidden": "0"}, "architecture"),
        ({"epochs": 0}, "epochs"),
        ({"lam": 0}, "lam"),
    ):
        with pytest.raises(ValueError, match=match):
            StudyConfig(**fields)


def test_parsers():
    assert paper.parse_architecture("500-200-100") == (500, 200, 100)
    assert paper.parse_architecture("300") == (300,)
    assert paper.parse_architecture([400, 50]) == (400, 50)
    for bad in ("", "0", "3--", "a-b"):
        with pytest.raises(ValueError):
            paper.parse_architecture(bad)
    rate = paper.parse_learning_rate("paper:1e-6")
    assert rate.value == pytest.approx(1e-4) and rate.paper_eta == 1e-6
    assert "1e-06" in rate.describe() and rate.slug == "paper-1e-06"
    tuned = paper.parse_learning_rate("tuned")
    assert tuned.value is None
    with pytest.raises(ValueError, match="not been tuned"):
        _ = tuned.rate
    assert paper.parse_learning_rate(0.05).value == 0.05
    with pytest.raises(ValueError):
        paper.parse_learning_rate("0")
    assert paper.parse_lam("tune") == "tune" and paper.parse_lam("0.5") == 0.5
    assert paper.parse_output_scale("last") == "last" and paper.parse_output_scale("3") == 3.0
    bad_specs = [(paper.parse_lam, "-1"), (paper.parse_lam, True),
                 (paper.parse_output_scale, "nan"), (paper.parse_output_scale, "big")]  # fmt: skip
    for parse, bad in bad_specs:
        with pytest.raises(ValueError):
            parse(bad)


# ------------------------------------------------------------------ the command line
def _args(argv):
    return cli.build_parser().parse_args(["reproduce", *argv])


def test_the_command_line_parses_into_a_config():
    argv = ["--dataset", "fashion-mnist", "--architectures", "300", "500-200", "--seeds", "3",
            "--lr", "paper:1e-5", "0.2", "--lam", "0.5", "--output-scale", "last", "--epochs",
            "4", "--inits", "xavier", "lifted", "--cache", "c", "--no-progress"]  # fmt: skip
    config = config_from_args(_args(argv))
    assert config == ReproduceConfig(
        dataset="fashion-mnist",
        architectures=[(300,), (500, 200)],
        seeds=3,
        learning_rates=["paper:1e-5", 0.2],
        lam=0.5,
        output_scale="last",
        epochs=4,
        inits=["xavier", "lifted"],
        cache_dir="c",
        progress=False,
        resume=True,
    )
    assert config_from_args(_args(["--quick"])) == ReproduceConfig(quick=True, resume=True)


def test_cli_glue(tmp_path, tiny_loader, capsys):
    argv = ["reproduce", "--quick", "--out", str(tmp_path / "cli"), "--architectures", "16",
            "--epochs", "1", "--seeds", "1", "--lr", "paper:1e-5", "0.2",
            "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "results.md" in printed and "runs.csv" in printed and "results.json" in printed
    study = ["--study", "--architectures", "8", "--epochs", "1", "--sweeps", "1", "--no-progress"]
    assert cli.main(["reproduce", *study, "--out", str(tmp_path / "study")]) == 0
    assert "# Study: lifted initialisation" in capsys.readouterr().out


BAD_OPTIONS = [
    (["--inits", "he"], "unknown initialisation 'he'"),
    (["--optimizer", "lbfgs"], "unknown optimizer 'lbfgs'"),
    (["--head", "squared"], "head must be one of"),
    (["--lr", "fast"], "argument --lr: a learning rate is a number"),
    (["--architectures", "3x"], "argument --architectures: an architecture lists"),
    (["--lam", "big"], "argument --lam: lam must be a positive number or 'tune'"),
    (["--output-scale", "big"], "argument --output-scale: output_scale must be one of"),
    (["--seeds", "0"], "argument --seeds: expected a positive integer"),
    (["--dataset", "cifar-10"], "argument --dataset: invalid choice"),
]


@pytest.mark.parametrize(("argv", "match"), BAD_OPTIONS, ids=[a[0] for a, _ in BAD_OPTIONS])
def test_bad_options_are_one_line_errors_before_any_work(tmp_path, tiny_loader, capsys, argv,
                                                         match):  # fmt: skip
    out = tmp_path / "bad"
    assert cli.main(["reproduce", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and match in err
    assert err.startswith("cvx-lifted reproduce: error:")
    assert tiny_loader == [] and not out.exists()


def test_study_on_the_validation_split(tmp_path, tiny_loader):
    config = StudyConfig(
        "mnist-10k",
        "16",
        heads=("simplex_xent",),
        output_scales=("none", "balanced"),
        learning_rates=(0.01, 0.3),
        epochs=1,
        sweeps=1,
        out_dir=tmp_path,
        progress=False,
    )
    res = paper.study_lifted_init(config)
    assert len(res["runs"]) == 2 + 2 * 2
    assert "| lifted simplex_xent:balanced |" in res["markdown"]
    assert (tmp_path / "study.md").exists() and (tmp_path / "study.json").exists()
    again = paper.study_lifted_init(config)
    assert again["markdown"] == res["markdown"]
    assert tiny_loader == ["mnist-10k", "mnist-10k"]
    # the validation split only: the lifted model's score is a validation score
    assert "validation_accuracy" in res["lifted"]["simplex_xent"]


SMALL = ["--architectures", "16", "--epochs", "1", "--seeds", "1", "--lr", "paper:1e-5",
         "--inits", "xavier", "--no-progress"]  # fmt: skip


def test_reproduce_writes_to_a_fresh_folder_unless_resume(tmp_path, tiny_loader, monkeypatch,
                                                          capsys):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    committed = tmp_path / "experiments" / "mnist-10k-quick"
    committed.mkdir(parents=True)
    (committed / "results.md").write_text("committed results\n")
    assert cli.main(["reproduce", "--quick", *SMALL]) == 0
    out = capsys.readouterr().out
    fresh = Path("experiments") / "mnist-10k-quick-2"
    assert f"holds an earlier run (--resume continues it); writing to {fresh}" in out
    assert (committed / "results.md").read_text() == "committed results\n"  # untouched
    assert sorted(p.name for p in committed.iterdir()) == ["results.md"]
    assert (tmp_path / fresh / "results.md").exists()
    # an explicit folder with results: refused without --resume, continued with it
    assert cli.main(["reproduce", "--quick", "--out", str(fresh), *SMALL]) == 2
    assert "already holds results of an earlier run" in capsys.readouterr().err
    assert cli.main(["reproduce", "--quick", "--out", str(fresh), "--resume", *SMALL]) == 0
    assert "0 run(s) computed" in capsys.readouterr().out
    # --resume without --out continues the default folder
    assert paper.output_folder(None, committed, resume=True) == committed
    assert paper.output_folder(None, committed, resume=False) == committed.with_name(
        "mnist-10k-quick-3"
    )
    # the Python API refuses an explicit folder with results unless it resumes
    with pytest.raises(ValueError, match="already holds results"):
        paper.reproduce(quick=True, out_dir=fresh, resume=False, progress=False)


@pytest.mark.parametrize("study", [False, True])
def test_missing_data_leaves_no_folder_behind(tmp_path, monkeypatch, capsys, study):
    monkeypatch.chdir(tmp_path)
    argv = ["reproduce", "--quick", "--data-dir", str(tmp_path / "nowhere"), *SMALL]
    assert cli.main([*argv, *(["--study"] if study else [])]) == 2
    assert "MNIST-10k data not found" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    # an existing (empty) output folder is kept, only what the run created is removed
    (tmp_path / "mine").mkdir()
    assert cli.main([*argv, "--out", str(tmp_path / "mine")]) == 2
    assert (tmp_path / "mine").is_dir() and list((tmp_path / "mine").iterdir()) == []


# ------------------------------------------------------------------ the package's place
def _modules(package):
    return sorted((REPO / "cvx_lifted" / package).glob("*.py"))


def test_the_paper_package_never_imports_the_command_line():
    for path in _modules("paper"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("cvx_lifted.cli"), path.name
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("cvx_lifted.cli") for a in node.names), path
    code = "import sys, cvx_lifted.paper; print(sorted(m for m in sys.modules if 'cli' in m))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "cvx_lifted.cli" not in proc.stdout


@pytest.mark.parametrize("package", ["paper", "cli"])
def test_modules_and_functions_stay_small(package):
    for path in _modules(package):
        text = path.read_text()
        assert len(text.splitlines()) <= 900, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 120, f"{path.name}: {node.name} has {length} lines"


def test_figure_1_legend_does_not_cover_the_curves(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    records = [
        {"architecture": arch, "init": init, "lr": 1e-3, "seed": seed, "seconds": [1.0] * 6,
         "test_accuracy": list(np.clip(np.linspace(0.1, 0.95, 6) + 0.01 * rng.random(6), 0, 1))}
        for arch in ("300", "500-200-100") for init in paper.INITS for seed in (0, 1)
    ]  # fmt: skip
    res = paper.ReproduceResult(
        out_dir=tmp_path,
        runs=records,
        pretrain=[
            {"architecture": a, "seed": 0, "test_accuracy": 0.93} for a in ("300", "500-200-100")
        ],
    )
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to inspect it
    path = report.figure(
        res, "mnist-10k", paper.parse_learning_rate("paper:1e-5"), ["300", "500-200-100"],
        list(paper.INITS), tmp_path / "figure1.png",
    )  # fmt: skip
    assert path.read_bytes()[:4] == b"\x89PNG"
    (fig,) = figures
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    assert len(legend.get_texts()) == len(paper.INITS) + 1  # each initialisation, lifted alone
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = legend.get_window_extent(renderer)
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(renderer))
    monkeypatch.undo()
    plt.close(fig)


def test_one_seed_reports_no_spread():
    from cvx_lifted.paper import report
    from cvx_lifted.paper.results import mean_std

    mean, std = mean_std([0.9])
    assert mean == 0.9 and np.isnan(std)  # undefined with one seed, not 0
    assert report._fmt((mean, std)) == "0.900"
    assert report._fmt(mean_std([0.9, 0.8])) == "0.850 ± 0.071"

# SPDX-License-Identifier: Apache-2.0
r"""Reproduce the paper's §7 experiment: lifted networks as initialisations (Table 1, Figure 1).

Protocol (paper §7, with the choices the paper leaves open stated here):

* **Data**: the training rows of ``dataset`` (optionally a stratified subsample), the test rows
  for every reported accuracy. Every *choice* (λ, the standard learning rate, the output scale of
  the lifted initialisation) is made on a validation part carved from the training rows
  (stratified, seed 0), never on the test rows.
* **Lifted model** ("Our Model"): :class:`~cvx_lifted.LiftedNetwork` with ``relu_fenchel``
  hidden layers (the ReLU's Fenchel--Young divergence: with the plain ℓ2 divergence the ReLU
  hardly acts, measured 0.846 validation accuracy) and the ``simplex_xent`` head (cross-entropy
  over the simplex, eq. 15), ρ = 1e-3, λ chosen by Bayesian optimisation (:mod:`cvx_lifted.tune`,
  on the first architecture, short fits), trained by BCD for ``sweeps`` sweeps. Its test accuracy
  by the feed-forward rule (and by the lifted rule, eq. 12) is the "Our Model" column.
* **Initialisations** (:mod:`cvx_lifted.interop.torch`): Normal (σ² = 0.1), Xavier (Glorot
  uniform), σ²-scale (TensorFlow's variance scaling: scale 1, fan-in, truncated normal), all with
  biases 0.1; Lifted (the lifted model's weights and biases, its last pre-activation rescaled by
  the factor that minimises the softmax cross-entropy on the training rows, spread evenly over the
  layers: ``output_scale="balanced"``).
* **Training**: 17 epochs of plain mini-batch SGD (batch 100, constant rate, no momentum) on the
  batch-averaged softmax cross-entropy plus ρ‖W‖² (ρ = 1e-3, every weight matrix, no bias), the
  same batch order for every initialisation of a seed; test accuracy before training and after
  every epoch. Learning rates: the paper's 1e-5 and 1e-6 translated to the averaged loss (× 100,
  :func:`~cvx_lifted.interop.torch.paper_learning_rate`), and a standard rate tuned for Xavier on
  the validation part (``"tuned"``).

Everything finished is stored at once in ``<out>/runs.jsonl`` (one JSON record per lifted
pretraining, tuning step or SGD run, keyed by dataset, architecture, seed, initialisation and
learning rate plus a fingerprint of the protocol) and never recomputed; lifted weights are cached
in ``<out>/cache/`` (not meant to be committed). Outputs, rewritten after every (seed,
architecture) pair: ``results.md`` (Table 1 per learning rate, mean ± std over seeds, epochs
and wall time to reach Xavier's final accuracy), ``figure1_<lr>.png`` (test accuracy per epoch,
±2 std bands), ``runs.csv`` (one row per run and epoch), ``pretrain.csv`` and ``results.json``
(everything).

Command line: ``cvx-lifted reproduce --dataset mnist-10k [--quick] [--out DIR] ...``
(:func:`add_reproduce_parser`, :func:`run_reproduce`).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cvx_lifted.cli import _non_negative_int, _positive_int
from cvx_lifted.datasets import DATASETS, load_dataset

__all__ = [
    "ARCHITECTURES",
    "CLI_DATASETS",
    "DEFAULT_LEARNING_RATES",
    "FIGURE_ARCHITECTURES",
    "INIT_LABELS",
    "LR_GRID",
    "PAPER_TABLE1",
    "QUICK",
    "LearningRate",
    "ReproduceResult",
    "RunStore",
    "add_reproduce_parser",
    "parse_architecture",
    "parse_learning_rate",
    "reproduce",
    "run_reproduce",
    "study_lifted_init",
]

#: Hidden layers of the paper's Table 1.
ARCHITECTURES: tuple[tuple[int, ...], ...] = (
    (300,),
    (300, 100),
    (500, 150),
    (500, 200, 100),
    (400, 200, 100, 50),
)
#: Architectures of the paper's Figure 1.
FIGURE_ARCHITECTURES: tuple[tuple[int, ...], ...] = ((300,), (500, 200, 100))
#: The paper's two rates (translated to the averaged loss) and a tuned standard rate.
DEFAULT_LEARNING_RATES: tuple[str, ...] = ("paper:1e-5", "paper:1e-6", "tuned")
#: Candidate standard rates (batch-averaged loss) for ``"tuned"``, tried with Xavier.
LR_GRID: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0)
#: Data sets offered by ``cvx-lifted reproduce`` (the Python API also takes ``"digits"``).
CLI_DATASETS: tuple[str, ...] = ("mnist-10k", "mnist", "fashion-mnist")
#: Column titles of Table 1.
INIT_LABELS: dict[str, str] = {
    "normal": "NN[Normal]",
    "xavier": "NN[Xavier]",
    "variance_scaling": "NN[σ²-scale]",
    "lifted": "NN[Lifted]",
}
#: What ``quick=True`` sets (for every argument left at ``None``): < 2 minutes on MNIST-10k.
QUICK: dict[str, Any] = {
    "architectures": ((300,),),
    "seeds": 2,
    "epochs": 3,
    "sweeps": 2,
    "learning_rates": ("paper:1e-5", "paper:1e-6", 0.1),
    "tune_trials": 0,
    "max_train_rows": 3000,
}
_DEFAULTS: dict[str, Any] = {
    "architectures": ARCHITECTURES,
    "seeds": 5,
    "epochs": 17,
    "sweeps": 8,
    "learning_rates": DEFAULT_LEARNING_RATES,
    "tune_trials": 12,
    "max_train_rows": None,
}
DEFAULT_LAM = 1.0

#: The paper's Table 1 (MNIST, 60,000 training rows): "Our Model", Normal, Xavier, σ²-scale,
#: Lifted, mean test accuracy, by TensorFlow learning rate and architecture.
PAPER_TABLE1: dict[float, dict[str, tuple[float, float, float, float, float]]] = {
    1e-5: {
        "300": (0.898, 0.915, 0.923, 0.924, 0.962),
        "300-100": (0.875, 0.919, 0.932, 0.931, 0.969),
        "500-150": (0.865, 0.927, 0.936, 0.935, 0.970),
        "500-200-100": (0.853, 0.927, 0.939, 0.935, 0.958),
        "400-200-100-50": (0.770, 0.919, 0.938, 0.936, 0.919),
    },
    1e-6: {
        "300": (0.898, 0.800, 0.836, 0.844, 0.875),
        "300-100": (0.875, 0.792, 0.838, 0.842, 0.899),
        "500-150": (0.865, 0.824, 0.850, 0.858, 0.890),
        "500-200-100": (0.853, 0.821, 0.857, 0.848, 0.926),
        "400-200-100-50": (0.770, 0.751, 0.838, 0.815, 0.959),
    },
}
_INITS: tuple[str, ...] = ("normal", "xavier", "variance_scaling", "lifted")
_OUTPUT_SCALES: tuple[str, ...] = ("balanced", "last", "none")


# ------------------------------------------------------------------------------ parsing
def parse_architecture(text: str | Sequence[int]) -> tuple[int, ...]:
    """Parse hidden-layer widths: ``"500-200-100"``, ``"500,200"`` or a sequence of ints.

    Parameters
    ----------
    text : str or sequence of int

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        For anything but positive integers.
    """
    parts: list[Any] = (
        str(text).strip().replace(",", "-").split("-") if isinstance(text, str) else list(text)
    )
    try:
        widths = tuple(int(str(p).strip()) for p in parts)
    except (TypeError, ValueError):
        widths = ()
    if not widths or any(w < 1 for w in widths):
        raise ValueError(
            f"an architecture lists hidden widths such as 300 or 500-200-100, got {text!r}."
        )
    return widths


def _arch_name(hidden: Sequence[int]) -> str:
    return "-".join(str(h) for h in hidden)


@dataclass(frozen=True)
class LearningRate:
    """A learning rate of the experiment, as asked for and as used.

    Attributes
    ----------
    label : str
        ``"paper:1e-05"``, ``"tuned"`` or the number itself (``"0.1"``).
    value : float or None
        The rate for the batch-averaged loss (``None`` for ``"tuned"`` until it is tuned).
    paper_eta : float or None
        The paper's TensorFlow rate it translates (``paper:`` labels only).
    """

    label: str
    value: float | None
    paper_eta: float | None = None

    def describe(self) -> str:
        """Return a one-line description used in tables and figure titles."""
        if self.paper_eta is not None:
            return (
                f"η = {self.value:g} (the paper's η = {self.paper_eta:g} for its batch-summed loss)"
            )
        if self.label == "tuned":
            value = "?" if self.value is None else f"{self.value:g}"
            return f"η = {value} (standard rate, tuned for Xavier on the validation split)"
        return f"η = {self.value:g}"

    @property
    def slug(self) -> str:
        """File-name friendly label."""
        if self.paper_eta is not None:
            return f"paper-{self.paper_eta:g}"
        if self.label == "tuned":
            return "tuned"
        return f"lr-{self.value:g}"


def parse_learning_rate(spec: str | float) -> LearningRate:
    """Parse ``"paper:1e-5"`` (the paper's rate, translated), ``"tuned"`` or a number.

    Parameters
    ----------
    spec : str or float

    Returns
    -------
    LearningRate

    Raises
    ------
    ValueError
        For anything else, or a non-positive rate.
    """
    from cvx_lifted.interop.torch import paper_learning_rate

    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "tuned":
            return LearningRate("tuned", None)
        if text.startswith("paper:"):
            try:
                eta = float(text.split(":", 1)[1])
            except ValueError:
                eta = float("nan")
            if not (math.isfinite(eta) and eta > 0):
                raise ValueError(f"bad paper learning rate {spec!r}; e.g. paper:1e-5.")
            return LearningRate(f"paper:{eta:g}", paper_learning_rate(eta), eta)
        try:
            value = float(text)
        except ValueError:
            raise ValueError(
                f"a learning rate is a number, 'tuned' or 'paper:ETA' (e.g. paper:1e-5), got "
                f"{spec!r}."
            ) from None
    else:
        value = float(spec)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"a learning rate must be a positive number, got {spec!r}.")
    return LearningRate(f"{value:g}", value)


# ------------------------------------------------------------------------------ storage
def _key(record: dict[str, Any]) -> str:
    fields = ("kind", "dataset", "architecture", "seed", "init", "lr", "fingerprint")
    return json.dumps([record.get(f) for f in fields])


class RunStore:
    """Append-only JSON-lines store of finished runs (one record per line, flushed and synced).

    A record is identified by its ``kind``, ``dataset``, ``architecture``, ``seed``, ``init``,
    ``lr`` and ``fingerprint`` fields; the last record with a given identity wins. Lines that do
    not parse (a run interrupted while writing) are ignored.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.jsonl`` file (created with its folder when missing).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict):
                    self.records[_key(record)] = record

    def get(self, **identity: Any) -> dict[str, Any] | None:
        """Return the stored record with this identity, or ``None``."""
        return self.records.get(_key(identity))

    def put(self, record: dict[str, Any]) -> None:
        """Store a finished record now (append, flush, fsync)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(_jsonable(record), allow_nan=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.records[_key(record)] = record

    def select(self, **match: Any) -> list[dict[str, Any]]:
        """Return the records whose fields equal ``match``."""
        return [r for r in self.records.values() if all(r.get(k) == v for k, v in match.items())]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _fingerprint(payload: dict[str, Any]) -> str:
    text = json.dumps(_jsonable(payload), sort_keys=True)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


# ------------------------------------------------------------------------------ result
@dataclass
class ReproduceResult:
    """What :func:`reproduce` produced.

    Attributes
    ----------
    out_dir : pathlib.Path
        Output folder.
    paths : dict of str to pathlib.Path or list
        ``markdown``, ``csv``, ``pretrain_csv``, ``json``, ``store`` and ``figures`` (a list).
    pretrain : list of dict
        One record per (architecture, seed) lifted pretraining.
    runs : list of dict
        One record per SGD run (per-epoch test accuracy, loss and wall time).
    tuning : dict
        ``lambda`` and ``learning_rate`` tuning records (``None`` when skipped).
    summary : dict
        Table 1 numbers, epochs and wall time to reach Xavier's accuracy, phase wall times.
    computed : int
        Runs computed by this call (the others came from the store).
    reused : int
        Runs read back from the store.
    seconds : float
        Wall time of this call.
    """

    out_dir: Path
    paths: dict[str, Any] = field(default_factory=dict)
    pretrain: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    tuning: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    computed: int = 0
    reused: int = 0
    seconds: float = 0.0


# ------------------------------------------------------------------------------ helpers
def _subsample(
    X: np.ndarray, y: np.ndarray, n: int | None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    if n is None or X.shape[0] <= n:
        return X, y
    from sklearn.model_selection import train_test_split

    X_sub, _, y_sub, _ = train_test_split(X, y, train_size=int(n), random_state=seed, stratify=y)
    return X_sub, y_sub


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    info["load_average_now"] = _load()
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        pass
    from cvx_lifted._version import __version__

    info["cvx_lifted"] = __version__
    return info


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return None


def _select(runs: Iterable[dict[str, Any]], arch: str, init: str, lr: float) -> list[dict]:
    """Return the SGD runs of one architecture, initialisation and learning rate."""
    return [r for r in runs if r["architecture"] == arch and r["init"] == init and r["lr"] == lr]


def _mean_std(values: Iterable[float]) -> tuple[float, float]:
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return float(arr.mean()), std


def _curves(runs: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    acc = np.asarray([r["test_accuracy"] for r in runs], dtype=np.float64)
    secs = np.asarray([r["seconds"] for r in runs], dtype=np.float64)
    std = acc.std(axis=0, ddof=1) if acc.shape[0] > 1 else np.zeros(acc.shape[1])
    return acc.mean(axis=0), std, secs.mean(axis=0)


def _first_reaching(curve: np.ndarray, target: float) -> int | None:
    hits = np.flatnonzero(curve >= target - 1e-12)
    return int(hits[0]) if hits.size else None


# ------------------------------------------------------------------------------ phases
def _save_weights(path: Path, network: Any) -> None:
    """Cache a lifted network as a model file (atomic, :meth:`LiftedNetwork.save`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    network.save(path)


def _load_weights(path: Path, network: Any) -> bool:
    """Copy the weights of a cached model file into ``network``; False if absent or unreadable."""
    from cvx_lifted.io import load_network

    if not path.exists():
        return False
    try:
        cached = load_network(path)
        network.set_weights(cached.weights, cached.biases)
    except (OSError, ValueError):  # ModelFileError is a ValueError
        return False
    return True


def _lifted_network(sizes: Sequence[int], cfg: dict[str, Any]) -> Any:
    from cvx_lifted.network import LiftedNetwork

    return LiftedNetwork(
        sizes,
        activation=cfg["activation"],
        output=cfg["head"],
        lam=cfg["lam"],
        rho=cfg["lifted_rho"],
        dtype=np.float32,
    )


def _pretrain(
    sizes: Sequence[int],
    seed: int,
    cfg: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    lifted_rule: bool,
) -> tuple[Any, dict[str, Any]]:
    """Fit the lifted model; return it and its record (accuracies, scale, wall times).

    The accuracy on ``(X_test, y_test)`` is recorded after every sweep (a measurement, never a
    stopping rule), with the cumulative wall time of the sweeps, for time-to-accuracy tables.
    """
    from cvx_lifted.interop.torch import fit_output_scale

    n_classes = sizes[-1]
    net = _lifted_network(sizes, cfg)
    t0 = time.perf_counter()
    result = net.fit(
        X,
        np.eye(n_classes, dtype=np.float32)[y],
        max_iter=cfg["sweeps"],
        tol=0.0,
        random_state=seed,
        validation=(X_test, y_test),
    )
    seconds_bcd = time.perf_counter() - t0
    sweep_seconds = [float(h.get("sweep", 0.0)) for h in result.history.seconds]
    t1 = time.perf_counter()
    scale = 1.0
    if cfg["output_scale"] in ("balanced", "last"):
        scale = fit_output_scale(net, X, y)
    elif isinstance(cfg["output_scale"], float):
        scale = cfg["output_scale"]
    seconds_scale = time.perf_counter() - t1
    record: dict[str, Any] = {
        "test_accuracy": float(np.mean(net.predict(X_test).argmax(axis=1) == y_test)),
        "train_accuracy": float(np.mean(net.predict(X).argmax(axis=1) == y)),
        "output_scale": float(scale),
        "sweeps": int(result.n_iter),
        "objective": [float(v) for v in result.history.objective],
        "seconds_bcd": seconds_bcd,
        "seconds_scale": seconds_scale,
        "seconds": seconds_bcd + seconds_scale,
        "seconds_per_sweep": seconds_bcd / max(1, result.n_iter),
        "test_accuracy_per_sweep": [float(v) for v in result.history.validation],
        "seconds_cumulative_per_sweep": [float(v) for v in np.cumsum(sweep_seconds)],
    }
    if lifted_rule:
        t2 = time.perf_counter()
        pred = net.predict_lifted(X_test)
        record["test_accuracy_lifted_rule"] = float(np.mean(pred.argmax(axis=1) == y_test))
        record["seconds_lifted_rule"] = time.perf_counter() - t2
    return net, record


def _model_for(
    init: str, sizes: Sequence[int], seed: int, net: Any, scale: float, cfg: dict[str, Any]
) -> Any:
    from cvx_lifted.interop import torch as ct

    if init == "lifted":
        return ct.lifted_init(
            net, output_scale=scale, balance=cfg["output_scale"] == "balanced", dtype=np.float32
        )
    return ct.initialize(init, sizes, seed=seed, dtype=np.float32)


# ------------------------------------------------------------------------------ main entry
def _has_results(folder: Path) -> bool:
    """Whether ``folder`` exists and holds anything (an earlier run's results)."""
    try:
        return folder.is_dir() and any(folder.iterdir())
    except OSError:
        return True


def output_folder(
    out_dir: str | os.PathLike[str] | None, default: str | os.PathLike[str], *, resume: bool
) -> Path:
    """Choose the output folder of a run: never an earlier run's folder unless ``resume``.

    Parameters
    ----------
    out_dir : str or os.PathLike or None
        The folder asked for. With results in it and ``resume=False``: an error.
    default : str or os.PathLike
        The folder used when ``out_dir`` is ``None`` (e.g. ``experiments/mnist-10k``). With
        results in it and ``resume=False``, the first of ``default-2``, ``default-3``, ... that
        does not exist yet or is empty is used instead.
    resume : bool
        Continue the run in the folder (finished runs are reused, not recomputed).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        If ``out_dir`` holds results and ``resume`` is false.
    """
    if out_dir is not None:
        out = Path(out_dir)
        if not resume and _has_results(out):
            raise ValueError(
                f"the output folder {out} already holds results of an earlier run; pass --resume "
                "(resume=True) to continue that run, or choose another --out folder."
            )
        return out
    out = Path(default)
    k = 2
    while not resume and _has_results(out):
        out = Path(default).with_name(f"{Path(default).name}-{k}")
        k += 1
    return out


def _prune_empty(folder: Path, existed: bool) -> None:
    """Remove ``folder`` (and the empty folders in it) if this run created it and wrote nothing."""
    if existed or not folder.is_dir():
        return
    for root, dirs, files in os.walk(folder, topdown=False):
        if files:
            return
        for name in dirs:
            with contextlib.suppress(OSError):
                os.rmdir(Path(root) / name)
    with contextlib.suppress(OSError):
        folder.rmdir()
    parent = folder.parent  # experiments/ itself, when this run made it
    with contextlib.suppress(OSError):
        if parent.name == "experiments" and not any(parent.iterdir()):
            parent.rmdir()


def reproduce(
    dataset: str = "mnist-10k",
    architectures: Sequence[Sequence[int] | str] | None = None,
    seeds: int | Sequence[int] | None = None,
    epochs: int | None = None,
    learning_rates: Sequence[str | float] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    quick: bool = False,
    *,
    inits: Sequence[str] = _INITS,
    batch_size: int = 100,
    optimizer: str = "sgd",
    momentum: float = 0.0,
    rho: float = 1e-3,
    lam: float | str = "tune",
    sweeps: int | None = None,
    activation: str = "relu_fenchel",
    head: str = "simplex_xent",
    output_scale: str | float = "balanced",
    tune_trials: int | None = None,
    tune_sweeps: int = 4,
    tune_rows: int | None = 10000,
    tune_timeout: float | None = 900.0,
    lr_grid: Sequence[float] = LR_GRID,
    val_fraction: float = 0.2,
    max_train_rows: int | None = None,
    figure_architectures: Sequence[Sequence[int] | str] | None = None,
    lifted_rule: bool = True,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    threads: int | None = 1,
    progress: bool = True,
    resume: bool = True,
) -> ReproduceResult:
    r"""Run (or resume) the paper's §7 experiment and write its tables, figures and raw results.

    Parameters
    ----------
    dataset : {"mnist-10k", "mnist", "fashion-mnist", "digits"}, default="mnist-10k"
        Data set (see :func:`cvx_lifted.datasets.load_dataset`).
    architectures : sequence, optional
        Hidden widths, e.g. ``[(300,), "500-200-100"]``; default :data:`ARCHITECTURES`.
    seeds : int or sequence of int, optional
        ``N`` means seeds ``0..N-1`` (default 5). Seed ``k`` seeds the lifted model's BCD, the
        random initialisations and the batch order (shared by every initialisation).
    epochs : int, optional
        SGD epochs (default 17).
    learning_rates : sequence, optional
        Items ``"paper:ETA"`` (the paper's TensorFlow rate, translated to the averaged loss),
        ``"tuned"`` (best of ``lr_grid`` for Xavier on the validation split) or numbers
        (used as given); default :data:`DEFAULT_LEARNING_RATES`.
    out_dir : str or os.PathLike, optional
        Output folder (default ``experiments/<dataset>``, ``experiments/<dataset>-quick``).
    quick : bool, default=False
        Fill every argument left at ``None`` from :data:`QUICK` (one architecture, 2 seeds,
        3 epochs, 2 sweeps, no tuning, 3,000 training rows): a smoke run of under 2 minutes.
    inits : sequence of str, default=("normal", "xavier", "variance_scaling", "lifted")
        Initialisations (:data:`cvx_lifted.interop.torch.INITS`).
    batch_size : int, default=100
        SGD batch size (the paper's).
    optimizer : {"sgd", "adam"}, default="sgd"
        The paper used plain mini-batch gradient descent.
    momentum : float, default=0.0
        SGD momentum.
    rho : float, default=1e-3
        ρ of the penalty ρ‖W‖² in SGD training, and of the lifted model (the paper's 1e-3).
    lam : float or "tune", default="tune"
        λ of the lifted model, or ``"tune"``: Bayesian optimisation on the validation split
        (with ``tune_trials == 0``, λ = 1).
    sweeps : int, optional
        BCD sweeps of the lifted pretraining (default 8).
    activation : str, default="relu_fenchel"
        Hidden activation of the lifted model (ReLU in the torch copies).
    head : {"simplex_xent", "softmax_xent"}, default="simplex_xent"
        Output head of the lifted model.
    output_scale : {"balanced", "last", "none"} or float, default="balanced"
        How the lifted initialisation's logits are scaled (see
        :func:`~cvx_lifted.interop.torch.lifted_init`): fitted on the training rows and spread
        over the layers, fitted and put on the last layer, none, or a fixed factor.
    tune_trials : int, optional
        Bayesian-optimisation budget for λ (default 12; 0 skips tuning).
    tune_sweeps : int, default=4
        Sweeps per tuning trial (a short fit).
    tune_rows : int or None, default=10000
        Rows of the fit part used per trial.
    tune_timeout : float or None, default=900
        Wall-time budget of the λ search in seconds.
    lr_grid : sequence of float, default=:data:`LR_GRID`
        Candidates for the ``"tuned"`` rate.
    val_fraction : float, default=0.2
        Fraction of the training rows held out for tuning.
    max_train_rows : int, optional
        Use a stratified subsample of the training rows (default: all).
    figure_architectures : sequence, optional
        Panels of Figure 1 (default: those of :data:`FIGURE_ARCHITECTURES` that are run, else
        all).
    lifted_rule : bool, default=True
        Also score the lifted model with the lifted prediction rule (eq. 12).
    data_dir : str or os.PathLike, optional
        Folder of the data set's IDX files (default: see :mod:`cvx_lifted.datasets`).
    cache_dir : str or os.PathLike, optional
        Cache of lifted weights (default ``<out>/cache``).
    threads : int or None, default=1
        BLAS and torch threads (``None`` leaves them alone).
    progress : bool, default=True
        Show a tqdm progress bar.
    resume : bool, default=True
        Continue the run stored in the output folder (finished runs are reused). With
        ``False`` (the command line's default, ``--resume`` turns it on) an output folder that
        holds results is never touched: a fresh one is used (``experiments/<dataset>-2``, ...)
        or, for an explicit ``out_dir``, a ``ValueError`` is raised. A folder created by this
        call is removed again if the call fails before writing anything into it.

    Returns
    -------
    ReproduceResult

    Raises
    ------
    ValueError
        For an unknown data set, initialisation, optimiser, head or output scale, or bad sizes.
    ImportError
        Without PyTorch (or without Optuna when λ is tuned).
    """
    t_call = time.perf_counter()
    given = {
        "architectures": architectures,
        "seeds": seeds,
        "epochs": epochs,
        "sweeps": sweeps,
        "learning_rates": learning_rates,
        "tune_trials": tune_trials,
        "max_train_rows": max_train_rows,
    }
    opts = {
        k: (v if v is not None else (QUICK if quick else _DEFAULTS)[k]) for k, v in given.items()
    }
    canonical = str(dataset).strip().lower().replace("_", "-")
    if canonical not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}.")
    archs = [parse_architecture(a) for a in opts["architectures"]]
    if not archs:
        raise ValueError("give at least one architecture.")
    if isinstance(opts["seeds"], (int, np.integer)):
        seed_list = list(range(int(opts["seeds"])))
    else:
        seed_list = [int(s) for s in opts["seeds"]]
    if not seed_list or any(s < 0 for s in seed_list):
        raise ValueError(f"seeds must be a positive count or non-negative seeds, got {seeds!r}.")
    for name in ("epochs", "sweeps"):
        if int(opts[name]) != opts[name] or opts[name] < 1:
            raise ValueError(f"{name} must be a positive integer, got {opts[name]!r}.")
    rates = [parse_learning_rate(s) for s in opts["learning_rates"]]
    if not rates:
        raise ValueError("give at least one learning rate.")
    unknown = [i for i in inits if i not in _INITS]
    if unknown or not inits:
        raise ValueError(
            f"unknown initialisation {unknown[0] if unknown else inits!r}; choose from "
            f"{', '.join(_INITS)}."
        )
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"unknown optimizer {optimizer!r}; choose 'sgd' or 'adam'.")
    if head not in ("simplex_xent", "softmax_xent"):
        raise ValueError(f"head must be 'simplex_xent' or 'softmax_xent', got {head!r}.")
    if isinstance(output_scale, str):
        if output_scale not in _OUTPUT_SCALES:
            raise ValueError(
                f"output_scale must be one of {', '.join(_OUTPUT_SCALES)} or a number, got "
                f"{output_scale!r}."
            )
    elif not (math.isfinite(float(output_scale)) and float(output_scale) > 0):
        raise ValueError(f"output_scale must be positive, got {output_scale!r}.")
    else:
        output_scale = float(output_scale)
    if (isinstance(lam, str) and lam != "tune") or (
        not isinstance(lam, str) and not (math.isfinite(float(lam)) and float(lam) > 0)
    ):
        raise ValueError(f"lam must be a positive number or 'tune', got {lam!r}.")
    from cvx_lifted.interop.torch import import_torch

    torch = import_torch()
    default = Path("experiments") / (f"{canonical}-quick" if quick else canonical)
    out = output_folder(out_dir, default, resume=resume)
    existed = out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        exp = _Experiment(
            dataset=canonical,
            archs=archs,
            seeds=seed_list,
            rates=rates,
            inits=list(inits),
            epochs=int(opts["epochs"]),
            train_cfg={
                "batch_size": int(batch_size),
                "optimizer": optimizer,
                "momentum": float(momentum),
                "rho": float(rho),
            },
            lifted_cfg={
                "activation": activation,
                "head": head,
                "lam": lam,
                "lifted_rho": float(rho),
                "sweeps": int(opts["sweeps"]),
                "output_scale": output_scale,
            },
            tune_cfg={
                "trials": int(opts["tune_trials"]),
                "sweeps": int(tune_sweeps),
                "rows": tune_rows,
                "timeout": tune_timeout,
                "lr_grid": [float(v) for v in lr_grid],
            },
            out=out,
            cache=Path(cache_dir) if cache_dir is not None else out / "cache",
            lifted_rule=lifted_rule,
            figure_architectures=figure_architectures,
            meta={"quick": bool(quick), "threads": threads, "load_average_at_start": _load()},
            progress=progress,
            t_call=t_call,
        )
        from threadpoolctl import threadpool_limits

        previous_threads = torch.get_num_threads()
        limiter = threadpool_limits(threads) if threads is not None else None
        if threads is not None:
            torch.set_num_threads(int(threads))
        try:
            X, y, X_test, y_test = load_dataset(canonical, data_dir, dtype=np.float32)
            X, y = _subsample(np.asarray(X, np.float32), np.asarray(y), opts["max_train_rows"])
            exp.set_data(X, y, np.asarray(X_test, np.float32), np.asarray(y_test), val_fraction)
            exp.run()
        finally:
            if threads is not None:
                torch.set_num_threads(previous_threads)
            if limiter is not None:
                limiter.restore_original_limits()
        exp.res.seconds = time.perf_counter() - t_call
        return exp.res

    except BaseException:
        _prune_empty(out, existed)
        raise


class _Experiment:
    """One call of :func:`reproduce`: tuning, pretraining and SGD runs, all resumable."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)
        self.store = RunStore(self.out / "runs.jsonl")
        self.res = ReproduceResult(out_dir=self.out)
        self.bar: Any = None

    # ---------------------------------------------------------------- set-up
    def set_data(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_test: np.ndarray,
        y_test: np.ndarray,
        val_fraction: float,
    ) -> None:
        from cvx_lifted.tune import split_validation

        self.X, self.y, self.X_test, self.y_test = X, y, X_test, y_test
        self.X_fit, self.y_fit, self.X_val, self.y_val = split_validation(
            X, y, val_fraction=val_fraction, seed=0
        )
        self.n_classes = int(max(y.max(), y_test.max())) + 1
        self.n_features = int(X.shape[1])
        self.data_id = {
            "dataset": self.dataset,
            "train_rows": int(X.shape[0]),
            "test_rows": int(X_test.shape[0]),
            "val_fraction": float(val_fraction),
        }

    def sizes(self, hidden: Sequence[int]) -> list[int]:
        return [self.n_features, *hidden, self.n_classes]

    def _train_kwargs(self) -> dict[str, Any]:
        return {**self.train_cfg, "epochs": self.epochs}

    # ---------------------------------------------------------------- tuning
    def tune_lam(self) -> None:
        lam = self.lifted_cfg["lam"]
        record = None
        if lam == "tune" and self.tune_cfg["trials"] > 0:
            cfg = {
                **self.data_id,
                "hidden": list(self.archs[0]),
                "activation": self.lifted_cfg["activation"],
                "head": self.lifted_cfg["head"],
                "rho": self.lifted_cfg["lifted_rho"],
                **{k: v for k, v in self.tune_cfg.items() if k != "lr_grid"},
            }
            fp = _fingerprint(cfg)
            record = self.store.get(kind="tune_lambda", dataset=self.dataset, fingerprint=fp)
            if record is None:
                from cvx_lifted.tune import tune_lambda

                self._say(f"λ by Bayesian optimisation ({self.tune_cfg['trials']} trials)")
                tuned = tune_lambda(
                    self.X_fit,
                    self.y_fit,
                    validation=(self.X_val, self.y_val),
                    hidden=self.archs[0],
                    activation=self.lifted_cfg["activation"],
                    output=self.lifted_cfg["head"],
                    rho=self.lifted_cfg["lifted_rho"],
                    n_trials=self.tune_cfg["trials"],
                    timeout=self.tune_cfg["timeout"],
                    max_iter=self.tune_cfg["sweeps"],
                    max_rows=self.tune_cfg["rows"],
                    seed=0,
                )
                record = {
                    "kind": "tune_lambda",
                    "dataset": self.dataset,
                    "fingerprint": fp,
                    "config": cfg,
                    **tuned.as_dict(),
                    "table": tuned.table(),
                }
                self.store.put(record)
                self.res.computed += 1
            lam = float(record["best_params"]["lam"])
        elif lam == "tune":
            lam = DEFAULT_LAM
        self.lifted_cfg["lam"] = float(lam)
        self.res.tuning["lambda"] = record

    def tune_lr(self) -> None:
        if not any(r.label == "tuned" for r in self.rates):
            self.res.tuning["learning_rate"] = None
            return
        from cvx_lifted.interop import torch as ct

        hidden = self.archs[0]
        fp = _fingerprint({**self.data_id, **self._train_kwargs(), "hidden": list(hidden)})
        records = []
        for lr in self.tune_cfg["lr_grid"]:
            ident = {
                "kind": "tune_lr",
                "dataset": self.dataset,
                "architecture": _arch_name(hidden),
                "seed": 0,
                "init": "xavier",
                "lr": float(lr),
                "fingerprint": fp,
            }
            rec = self.store.get(**ident)
            if rec is None:
                self._say(f"standard rate: Xavier, η={lr:g}, validation split")
                model = ct.initialize("xavier", self.sizes(hidden), seed=0)
                tr = ct.train(
                    model,
                    self.X_fit,
                    self.y_fit,
                    self.X_val,
                    self.y_val,
                    lr=float(lr),
                    seed=0,
                    **self._train_kwargs(),
                )
                fields = _train_fields(tr)
                fields["validation_accuracy"] = fields.pop("test_accuracy")
                rec = {**ident, **fields}
                self.store.put(rec)
                self.res.computed += 1
            records.append(rec)
        best = max(records, key=lambda r: (r["validation_accuracy"][-1], -r["lr"]))
        self.rates = [
            LearningRate("tuned", float(best["lr"])) if r.label == "tuned" else r
            for r in self.rates
        ]
        self.res.tuning["learning_rate"] = {
            "architecture": _arch_name(hidden),
            "grid": list(self.tune_cfg["lr_grid"]),
            "chosen": float(best["lr"]),
            "validation_final": {f"{r['lr']:g}": r["validation_accuracy"][-1] for r in records},
            "diverged": {f"{r['lr']:g}": r["diverged"] for r in records},
            "seconds": float(sum(r["seconds"][-1] + r["eval_seconds"] for r in records)),
        }

    # ---------------------------------------------------------------- identities
    def pre_ident(self, arch: str, seed: int) -> dict[str, Any]:
        return {
            "kind": "pretrain",
            "dataset": self.dataset,
            "architecture": arch,
            "seed": seed,
            "init": "lifted",
            "lr": None,
            "fingerprint": self.pretrain_fp,
        }

    def sgd_ident(self, arch: str, seed: int, init: str, rate: LearningRate) -> dict[str, Any]:
        payload = {**self.data_id, **self._train_kwargs(), "init": init}
        if init == "lifted":
            payload["pretrain"] = self.pretrain_fp
        return {
            "kind": "sgd",
            "dataset": self.dataset,
            "architecture": arch,
            "seed": seed,
            "init": init,
            "lr": float(rate.value),  # type: ignore[arg-type]
            "fingerprint": _fingerprint(payload),
        }

    # ---------------------------------------------------------------- runs
    def pretrain(self, hidden: tuple[int, ...], seed: int) -> tuple[Any, dict[str, Any]]:
        """Return the lifted network (``None`` if stored and not needed yet) and its record."""
        arch = _arch_name(hidden)
        ident = self.pre_ident(arch, seed)
        record = self.store.get(**ident)
        if record is not None:
            self.res.reused += 1
            return None, record
        self._say(f"{arch} seed {seed}: lifted pretraining")
        net, fields = _pretrain(
            self.sizes(hidden),
            seed,
            self.lifted_cfg,
            self.X,
            self.y,
            self.X_test,
            self.y_test,
            self.lifted_rule,
        )
        _save_weights(self.weights_path(arch, seed), net)
        record = {**ident, **fields, "lam": self.lifted_cfg["lam"], "config": self.lifted_cfg}
        self.store.put(record)
        self.res.computed += 1
        self._tick()
        return net, record

    def weights_path(self, arch: str, seed: int) -> Path:
        return self.cache / self.dataset / f"{arch}_seed{seed}_{self.pretrain_fp}.cvxl"

    def lifted_network(self, hidden: tuple[int, ...], seed: int) -> Any:
        """Load the cached lifted weights, or refit (deterministic) when the cache is gone."""
        arch = _arch_name(hidden)
        net = _lifted_network(self.sizes(hidden), self.lifted_cfg)
        if _load_weights(self.weights_path(arch, seed), net):
            return net
        self._say(f"{arch} seed {seed}: lifted pretraining (weights not cached)")
        net, _ = _pretrain(
            self.sizes(hidden),
            seed,
            self.lifted_cfg,
            self.X,
            self.y,
            self.X_test,
            self.y_test,
            False,
        )
        _save_weights(self.weights_path(arch, seed), net)
        return net

    def sgd(
        self,
        hidden: tuple[int, ...],
        seed: int,
        init: str,
        rate: LearningRate,
        net: Any,
        pre: dict[str, Any],
    ) -> tuple[Any, dict[str, Any]]:
        from cvx_lifted.interop import torch as ct

        arch = _arch_name(hidden)
        ident = self.sgd_ident(arch, seed, init, rate)
        run = self.store.get(**ident)
        if run is None:
            self._say(f"{arch} seed {seed}: {INIT_LABELS[init]}, η={rate.value:g}")
            if init == "lifted" and net is None:
                net = self.lifted_network(hidden, seed)
            model = _model_for(
                init, self.sizes(hidden), seed, net, float(pre["output_scale"]), self.lifted_cfg
            )
            tr = ct.train(
                model,
                self.X,
                self.y,
                self.X_test,
                self.y_test,
                lr=float(rate.value),  # type: ignore[arg-type]
                seed=seed,
                **self._train_kwargs(),
            )
            run = {
                **ident,
                **_train_fields(tr),
                "pretrain_seconds": float(pre["seconds"]) if init == "lifted" else 0.0,
            }
            self.store.put(run)
            self.res.computed += 1
            self._tick()
        else:
            self.res.reused += 1
        return net, {**run, "lr_label": rate.label, "paper_eta": rate.paper_eta}

    def count_todo(self) -> int:
        todo = 0
        for hidden in self.archs:
            arch = _arch_name(hidden)
            for seed in self.seeds:
                todo += self.store.get(**self.pre_ident(arch, seed)) is None
                for rate in self.rates:
                    for init in self.inits:
                        todo += self.store.get(**self.sgd_ident(arch, seed, init, rate)) is None
        return todo

    def run(self) -> None:
        self.tune_lam()
        self.tune_lr()
        self.pretrain_fp = _fingerprint({**self.data_id, **self.lifted_cfg})
        self.bar = _bar(self.count_todo(), self.progress, self.dataset)
        try:
            # seeds outermost: a run stopped early still covers every architecture
            for seed in self.seeds:
                for hidden in self.archs:
                    net, pre = self.pretrain(hidden, seed)
                    self.res.pretrain.append(pre)
                    for rate in self.rates:
                        for init in self.inits:
                            net, run = self.sgd(hidden, seed, init, rate, net, pre)
                            self.res.runs.append(run)
                    self.write()
        finally:
            if self.bar is not None:
                self.bar.close()

    def write(self) -> None:
        meta = {
            **self.meta,
            "data": self.data_id,
            "train": {**self._train_kwargs()},
            "lifted": self.lifted_cfg,
            "tune": self.tune_cfg,
            "seeds": self.seeds,
            "architectures": [_arch_name(a) for a in self.archs],
            "learning_rates": [r.__dict__ for r in self.rates],
            "inits": self.inits,
        }
        _write_outputs(
            self.res,
            self.dataset,
            self.archs,
            self.seeds,
            self.rates,
            self.inits,
            self.epochs,
            self.figure_architectures,
            meta,
            self.t_call,
        )

    # ---------------------------------------------------------------- progress
    def _say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=True)
        elif self.progress:
            from tqdm.auto import tqdm

            tqdm.write(f"[reproduce {self.dataset}] {text}")

    def _tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)


def _train_fields(tr: Any) -> dict[str, Any]:
    return {
        "test_accuracy": [float(v) for v in tr.test_accuracy],
        "train_loss": [float(v) for v in tr.train_loss],
        "seconds": [float(v) for v in tr.seconds],
        "eval_seconds": float(tr.eval_seconds),
        "diverged": bool(tr.diverged),
    }


def _bar(total: int, progress: bool, dataset: str) -> Any:
    if not progress or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"reproduce {dataset}", unit="run", dynamic_ncols=True)


# ------------------------------------------------------------------------------ outputs
def _summarise(
    res: ReproduceResult,
    archs: Sequence[tuple[int, ...]],
    rates: Sequence[LearningRate],
    inits: Sequence[str],
    n_epochs: int,
) -> dict[str, Any]:
    summary: dict[str, Any] = {"tables": {}, "reach": {}, "phase_seconds": {}}
    pre_by_arch: dict[str, list[dict[str, Any]]] = {}
    for p in res.pretrain:
        pre_by_arch.setdefault(p["architecture"], []).append(p)
    for rate in rates:
        table: dict[str, Any] = {}
        reach: dict[str, Any] = {}
        for hidden in archs:
            arch = _arch_name(hidden)
            pres = pre_by_arch.get(arch, [])
            if not pres:
                continue
            row: dict[str, Any] = {
                "our_model": _mean_std(p["test_accuracy"] for p in pres),
                "our_model_lifted_rule": _mean_std(
                    p["test_accuracy_lifted_rule"] for p in pres if "test_accuracy_lifted_rule" in p
                ),
                "pretrain_seconds": _mean_std(p["seconds"] for p in pres),
            }
            curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
            for init in inits:
                runs = _select(res.runs, arch, init, rate.value)
                if not runs:
                    continue
                row[init] = _mean_std(r["test_accuracy"][-1] for r in runs)
                row[f"{init}_seconds"] = _mean_std(r["seconds"][-1] for r in runs)
                row[f"{init}_diverged"] = int(sum(r["diverged"] for r in runs))
                curves[init] = _curves(runs)
            table[arch] = row
            if "xavier" in curves:
                target = float(curves["xavier"][0][-1])
                entry: dict[str, Any] = {"target": target}
                pre_s = float(row["pretrain_seconds"][0])
                for init, (mean, _std, secs) in curves.items():
                    epoch = _first_reaching(mean, target)
                    seconds = None if epoch is None else float(secs[epoch])
                    if seconds is not None and init == "lifted":
                        seconds += pre_s
                    entry[init] = {"epochs": epoch, "seconds": seconds}
                alone = [p for p in pres if p.get("test_accuracy_per_sweep")]
                if alone and len({len(p["test_accuracy_per_sweep"]) for p in alone}) == 1:
                    acc = np.mean([p["test_accuracy_per_sweep"] for p in alone], axis=0)
                    secs = np.mean([p["seconds_cumulative_per_sweep"] for p in alone], axis=0)
                    k = _first_reaching(acc, target)
                    entry["lifted_model"] = {
                        "sweeps": k,
                        "seconds": None if k is None else float(secs[k]),
                    }
                if "lifted" in entry:
                    lifted_e = entry["lifted"]["epochs"]
                    xav_s = entry["xavier"]["seconds"]
                    entry["lifted_within_third"] = bool(
                        lifted_e is not None and lifted_e <= n_epochs / 3
                    )
                    entry["lifted_time_le_xavier"] = bool(
                        entry["lifted"]["seconds"] is not None
                        and xav_s is not None
                        and entry["lifted"]["seconds"] <= xav_s
                    )
                    # the other way round: when does Xavier reach the lifted init's final accuracy?
                    lifted_final = float(curves["lifted"][0][-1])
                    xe = _first_reaching(curves["xavier"][0], lifted_final)
                    entry["xavier_reaches_lifted_final"] = xe
                reach[arch] = entry
        summary["tables"][rate.label] = table
        summary["reach"][rate.label] = reach
    phases: dict[str, float] = {
        "lifted_pretraining": float(sum(p["seconds"] for p in res.pretrain)),
    }
    for init in inits:
        phases[f"sgd_{init}"] = float(sum(r["seconds"][-1] for r in res.runs if r["init"] == init))
    phases["sgd_evaluation"] = float(sum(r["eval_seconds"] for r in res.runs))
    lam_rec = res.tuning.get("lambda")
    phases["tune_lambda"] = float(lam_rec["seconds"]) if lam_rec else 0.0
    lr_rec = res.tuning.get("learning_rate")
    phases["tune_learning_rate"] = float(lr_rec["seconds"]) if lr_rec else 0.0
    summary["phase_seconds"] = phases
    return summary


def _alone(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "–"
    if entry["sweeps"] is None:
        return "never"
    return f"{_sweeps(entry['sweeps'])} ({entry['seconds']:.1f} s)"


def _sweeps(k: int) -> str:
    return f"{k} sweep" if k == 1 else f"{k} sweeps"


def _fmt(ms: tuple[float, float], digits: int = 3) -> str:
    mean, std = ms
    if not math.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _markdown(
    res: ReproduceResult,
    dataset: str,
    archs: Sequence[tuple[int, ...]],
    seed_list: Sequence[int],
    rates: Sequence[LearningRate],
    inits: Sequence[str],
    n_epochs: int,
    meta: dict[str, Any],
    figures: Sequence[Path],
) -> str:
    s = res.summary
    lines = [
        f"# Lifted initialisation on {dataset}: the paper's Table 1 and Figure 1",
        "",
        "Generated by `cvx_lifted.experiments.reproduce` (do not edit by hand).",
        "",
        f"- data: {meta['data']['train_rows']} training rows, {meta['data']['test_rows']} test "
        f"rows; tuning on a stratified {meta['data']['val_fraction']:.0%} validation split of "
        f"the training rows",
        f"- seeds: {len(seed_list)} ({', '.join(map(str, seed_list))}); mean ± std (ddof=1) "
        f"over seeds of the test accuracy after {n_epochs} epochs",
        f"- training: {meta['train']['optimizer']} (momentum {meta['train']['momentum']:g}), "
        f"batch {meta['train']['batch_size']}, batch-averaged softmax cross-entropy + "
        f"ρ‖W‖², ρ = {meta['train']['rho']:g}",
        f"- lifted model: {meta['lifted']['activation']} hidden layers, "
        f"{meta['lifted']['head']} head, λ = {meta['lifted']['lam']:.4g}, "
        f"ρ = {meta['lifted']['lifted_rho']:g}, {meta['lifted']['sweeps']} BCD sweeps; "
        f"lifted initialisation's output scale: {meta['lifted']['output_scale']}",
        f"- machine: {res.summary.get('machine', {}).get('cpu_count')} cores, "
        f"{meta['threads']} BLAS/torch thread(s), load average (1, 5, 15 min) "
        f"{meta.get('load_average_at_start')} at the start and "
        f"{res.summary.get('machine', {}).get('load_average_now')} at the end of the last call, "
        f"which took {res.summary.get('call_seconds', 0.0):.0f} s (runs read back from the "
        f"store cost nothing)",
        "",
        "## Wall time of each phase (seconds, summed over runs)",
        "",
        "| phase | seconds |",
        "| --- | ---: |",
    ]
    for name, value in s["phase_seconds"].items():
        lines.append(f"| {name} | {value:.1f} |")
    lam_rec = res.tuning.get("lambda")
    if lam_rec:
        lines += [
            "",
            f"## λ by Bayesian optimisation ({lam_rec['sampler']} sampler, "
            f"{len(lam_rec['trials'])} trials, {lam_rec['config']['max_iter']} sweeps each, "
            f"{lam_rec['config']['fit_rows']} fit / {lam_rec['config']['validation_rows']} "
            f"validation rows, {lam_rec['seconds']:.0f} s)",
            "",
            lam_rec["table"],
        ]
    lr_rec = res.tuning.get("learning_rate")
    if lr_rec:
        lines += [
            "",
            f"## Standard learning rate (Xavier, {_arch_name(archs[0])}, seed 0, validation "
            f"accuracy after {n_epochs} epochs)",
            "",
            "| η | validation accuracy | diverged |",
            "| ---: | ---: | --- |",
        ]
        for lr, acc in lr_rec["validation_final"].items():
            mark = f"**{acc:.4f}**" if float(lr) == lr_rec["chosen"] else f"{acc:.4f}"
            lines.append(f"| {lr} | {mark} | {'yes' if lr_rec['diverged'][lr] else 'no'} |")
    cols = [INIT_LABELS[i] for i in inits]
    for rate in rates:
        table = s["tables"].get(rate.label, {})
        lines += [
            "",
            f"## Table 1, {rate.describe()}",
            "",
            "| Architecture | Our Model | " + " | ".join(cols) + " |",
            "| --- | " + " | ".join(["---:"] * (len(cols) + 1)) + " |",
        ]
        for arch, row in table.items():
            cells = [row["our_model"]] + [row.get(i, (float("nan"), 0.0)) for i in inits]
            best = max(c[0] for c in cells if math.isfinite(c[0]))
            text = []
            for c in cells:
                t = _fmt(c)
                text.append(f"**{t}**" if math.isfinite(c[0]) and c[0] == best else t)
            lines.append(f"| {arch} | " + " | ".join(text) + " |")
        paper = PAPER_TABLE1.get(rate.paper_eta or -1.0, {})
        if any(arch in table for arch in paper):
            lines += [
                "",
                f"The paper (MNIST, 60,000 training rows, TensorFlow η = {rate.paper_eta:g}):",
                "",
                "| Architecture | Our Model | " + " | ".join(INIT_LABELS[i] for i in _INITS) + " |",
                "| --- | ---: | ---: | ---: | ---: | ---: |",
            ]
            for arch, vals in paper.items():
                if arch in table:
                    lines.append(f"| {arch} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
        reach = s["reach"].get(rate.label, {})
        if reach:
            lines += [
                "",
                f"Epochs (and wall time, s) to reach NN[Xavier]'s mean accuracy after {n_epochs} "
                f"epochs, on the mean curves; the lifted time includes pretraining; the last "
                f"column: BCD sweeps (and their wall time) after which the lifted model itself "
                f"reaches it:",
                "",
                "| Architecture | target | " + " | ".join(cols) + " | lifted ≤ 1/3 epochs | "
                "lifted time ≤ Xavier | Xavier reaches lifted's final at | lifted model alone |",
                "| --- | ---: | "
                + " | ".join(["---:"] * len(cols))
                + " | --- | --- | ---: | ---: |",
            ]
            for arch, entry in reach.items():
                cells = []
                for init in inits:
                    e = entry.get(init)
                    if e is None or e["epochs"] is None:
                        cells.append("never")
                    else:
                        cells.append(f"{e['epochs']} ({e['seconds']:.1f} s)")
                xr = entry.get("xavier_reaches_lifted_final")
                lines.append(
                    f"| {arch} | {entry['target']:.3f} | "
                    + " | ".join(cells)
                    + f" | {'yes' if entry.get('lifted_within_third') else 'no'}"
                    + f" | {'yes' if entry.get('lifted_time_le_xavier') else 'no'}"
                    + f" | {'never' if xr is None else f'epoch {xr}'}"
                    + f" | {_alone(entry.get('lifted_model'))} |"
                )
    lines += [
        "",
        "## Lifted pretraining",
        "",
        "| Architecture | test accuracy (feed-forward) | (lifted rule) | seconds | s/sweep | "
        "output scale |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    by_arch: dict[str, list[dict[str, Any]]] = {}
    for p in res.pretrain:
        by_arch.setdefault(p["architecture"], []).append(p)
    for arch, pres in by_arch.items():
        lr_rule = _mean_std(
            p["test_accuracy_lifted_rule"] for p in pres if "test_accuracy_lifted_rule" in p
        )
        lines.append(
            f"| {arch} | {_fmt(_mean_std(p['test_accuracy'] for p in pres))} | {_fmt(lr_rule)} | "
            f"{_fmt(_mean_std(p['seconds'] for p in pres), 1)} | "
            f"{_fmt(_mean_std(p['seconds_per_sweep'] for p in pres), 2)} | "
            f"{_fmt(_mean_std(p['output_scale'] for p in pres), 2)} |"
        )
    lines += ["", "## SGD wall time per run (seconds, training only)", ""]
    lines += [
        "| Architecture | η | " + " | ".join(cols) + " |",
        "| --- | ---: | " + " | ".join(["---:"] * len(cols)) + " |",
    ]
    for rate in rates:
        for arch, row in s["tables"].get(rate.label, {}).items():
            cells = [_fmt(row.get(f"{i}_seconds", (float("nan"), 0.0)), 1) for i in inits]
            lines.append(f"| {arch} | {rate.value:g} | " + " | ".join(cells) + " |")
    if figures:
        lines += ["", "## Figure 1", ""]
        for fig in figures:
            lines.append(f"![{fig.stem}]({fig.name})")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _figure(
    res: ReproduceResult,
    dataset: str,
    rate: LearningRate,
    panels: Sequence[str],
    inits: Sequence[str],
    path: Path,
) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is an optional extra
        return None
    colors = {
        "normal": "tab:gray",
        "xavier": "tab:blue",
        "variance_scaling": "tab:green",
        "lifted": "tab:red",
    }
    fig, axes = plt.subplots(len(panels), 1, figsize=(6.4, 3.3 * len(panels)), squeeze=False)
    for ax, arch in zip(axes[:, 0], panels, strict=True):
        for init in inits:
            runs = _select(res.runs, arch, init, rate.value)
            if not runs:
                continue
            mean, std, _ = _curves(runs)
            epochs = np.arange(mean.size)
            ax.plot(epochs, mean, color=colors[init], label=INIT_LABELS[init], lw=1.6)
            ax.fill_between(
                epochs,
                np.clip(mean - 2 * std, 0, 1),
                np.clip(mean + 2 * std, 0, 1),
                color=colors[init],
                alpha=0.18,
                lw=0,
            )
        pres = [p for p in res.pretrain if p["architecture"] == arch]
        if pres:
            ax.axhline(
                float(np.mean([p["test_accuracy"] for p in pres])),
                color="black",
                ls="--",
                lw=1,
                label="lifted model alone",
            )
        n_seeds = len({r["seed"] for r in res.runs if r["architecture"] == arch})
        ax.set_title(f"{dataset}, hidden layers {arch}, {n_seeds} seed(s)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
    # one legend for all panels, below them, where it cannot cover a curve
    handles: dict[str, Any] = {}
    for ax in axes[:, 0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.suptitle(f"Test accuracy vs epoch (±2 std), {rate.describe()}", fontsize=9)
    legend_rows = math.ceil(len(handles) / 3) if handles else 0
    bottom = (0.1 + 0.2 * legend_rows) / fig.get_figheight() if handles else 0.0
    fig.tight_layout(rect=(0, bottom, 1, 1))
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles),
            loc="lower center",
            ncol=min(3, len(handles)),
            fontsize=8,
            frameon=False,
        )
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _write_outputs(
    res: ReproduceResult,
    dataset: str,
    archs: Sequence[tuple[int, ...]],
    seed_list: Sequence[int],
    rates: Sequence[LearningRate],
    inits: Sequence[str],
    n_epochs: int,
    figure_architectures: Sequence[Sequence[int] | str] | None,
    meta: dict[str, Any],
    t_call: float,
) -> None:
    out = res.out_dir
    res.summary = _summarise(res, archs, rates, inits, n_epochs)
    res.summary["machine"] = _machine()
    res.summary["call_seconds"] = time.perf_counter() - t_call
    done = {p["architecture"] for p in res.pretrain}
    if figure_architectures is not None:
        wanted = [_arch_name(parse_architecture(a)) for a in figure_architectures]
    else:
        wanted = [_arch_name(a) for a in FIGURE_ARCHITECTURES if a in archs]
        if not wanted:
            wanted = [_arch_name(a) for a in archs]
    panels = [a for a in wanted if a in done]
    figures: list[Path] = []
    if panels:
        for rate in rates:
            path = _figure(res, dataset, rate, panels, inits, out / f"figure1_{rate.slug}.png")
            if path is not None:
                figures.append(path)
    md = out / "results.md"
    md.write_text(
        _markdown(res, dataset, archs, seed_list, rates, inits, n_epochs, meta, figures),
        encoding="utf-8",
    )
    csv_path = out / "runs.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "dataset",
                "architecture",
                "seed",
                "init",
                "lr_label",
                "lr",
                "epoch",
                "test_accuracy",
                "train_loss",
                "train_seconds",
                "pretrain_seconds",
                "diverged",
            ]
        )
        for r in res.runs:
            for epoch, acc in enumerate(r["test_accuracy"]):
                writer.writerow(
                    [
                        r["dataset"],
                        r["architecture"],
                        r["seed"],
                        r["init"],
                        r["lr_label"],
                        f"{r['lr']:g}",
                        epoch,
                        f"{acc:.6f}",
                        f"{r['train_loss'][epoch]:.6g}",
                        f"{r['seconds'][epoch]:.4f}",
                        f"{r['pretrain_seconds']:.3f}",
                        int(r["diverged"]),
                    ]
                )
    pre_csv = out / "pretrain.csv"
    with pre_csv.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "dataset",
                "architecture",
                "seed",
                "lam",
                "sweeps",
                "test_accuracy",
                "test_accuracy_lifted_rule",
                "train_accuracy",
                "output_scale",
                "seconds",
                "seconds_per_sweep",
            ]
        )
        for p in res.pretrain:
            writer.writerow(
                [
                    p["dataset"],
                    p["architecture"],
                    p["seed"],
                    f"{p['lam']:.6g}",
                    p["sweeps"],
                    f"{p['test_accuracy']:.6f}",
                    f"{p.get('test_accuracy_lifted_rule', float('nan')):.6f}",
                    f"{p['train_accuracy']:.6f}",
                    f"{p['output_scale']:.6g}",
                    f"{p['seconds']:.3f}",
                    f"{p['seconds_per_sweep']:.3f}",
                ]
            )
    js = out / "results.json"
    payload = {
        "dataset": dataset,
        "config": meta,
        "tuning": res.tuning,
        "pretrain": res.pretrain,
        "runs": res.runs,
        "summary": res.summary,
    }
    tmp = js.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_jsonable(payload), indent=1), encoding="utf-8")
    os.replace(tmp, js)
    res.paths = {
        "markdown": md,
        "csv": csv_path,
        "pretrain_csv": pre_csv,
        "json": js,
        "store": out / "runs.jsonl",
        "figures": figures,
    }


# ------------------------------------------------------------------------------ study
def study_lifted_init(
    dataset: str = "mnist-10k",
    hidden: Sequence[int] | str = (300,),
    *,
    heads: Sequence[str] = ("simplex_xent", "softmax_xent"),
    output_scales: Sequence[str] = ("none", "last", "balanced"),
    learning_rates: Sequence[float] = (1e-4, 1e-3, 1e-2, 0.1, 0.3),
    epochs: int = 17,
    sweeps: int = 8,
    lam: float = DEFAULT_LAM,
    rho: float = 1e-3,
    seed: int = 0,
    max_train_rows: int | None = None,
    val_fraction: float = 0.2,
    out_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    threads: int | None = 1,
    progress: bool = True,
    resume: bool = True,
) -> dict[str, Any]:
    r"""Compare ways to turn a lifted network into an initialisation, on the validation split.

    For each output head the lifted model is fitted on the fit part of the training rows; each
    output scaling (``"none"``, ``"last"``: the fitted temperature on the last layer,
    ``"balanced"``: spread over the layers, see
    :func:`~cvx_lifted.interop.torch.lifted_init`) is fine-tuned at each learning rate, next to
    a Xavier baseline with the same batches, and scored on the validation part after every
    epoch. Nothing touches the test rows: this is where the protocol's choices come from.
    Resumable like :func:`reproduce` (``<out>/runs.jsonl``).

    Parameters
    ----------
    dataset : str, default="mnist-10k"
        Data set (see :func:`cvx_lifted.datasets.load_dataset`).
    hidden : sequence of int or str, default=(300,)
        Hidden widths.
    heads : sequence of str, default=("simplex_xent", "softmax_xent")
        Lifted output heads.
    output_scales : sequence of str, default=("none", "last", "balanced")
        Logit scalings of the lifted initialisation.
    learning_rates : sequence of float, default=(1e-4, 1e-3, 1e-2, 0.1, 0.3)
        SGD rates (batch-averaged loss).
    epochs : int, default=17
        SGD epochs.
    sweeps : int, default=8
        BCD sweeps.
    lam : float, default=1.0
        λ of the lifted models.
    rho : float, default=1e-3
        ρ of the lifted models and of SGD.
    seed : int, default=0
        Seed of the lifted fit, Xavier and the batch order.
    max_train_rows : int, optional
        Stratified subsample of the training rows (before the split).
    val_fraction : float, default=0.2
        Held-out fraction of the training rows.
    out_dir : str or os.PathLike, optional
        Default ``experiments/<dataset>-study``.
    data_dir : str or os.PathLike, optional
        Folder of the IDX files.
    threads : int or None, default=1
        BLAS and torch threads.
    progress : bool, default=True
        Show a progress bar.
    resume : bool, default=True
        Continue the study stored in the output folder; see :func:`reproduce`.

    Returns
    -------
    dict
        ``"lifted"`` (validation accuracy and seconds of each head), ``"runs"`` (one record per
        fine-tuning run) and ``"markdown"`` (the study table), also written to
        ``<out>/study.md`` and ``<out>/study.json``.
    """
    from threadpoolctl import threadpool_limits

    from cvx_lifted.interop import torch as ct
    from cvx_lifted.tune import split_validation

    canonical = str(dataset).strip().lower().replace("_", "-")
    if canonical not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}.")
    hidden_t = parse_architecture(hidden)
    arch = _arch_name(hidden_t)
    for scale in output_scales:
        if scale not in _OUTPUT_SCALES:
            raise ValueError(f"unknown output scale {scale!r}; choose from {_OUTPUT_SCALES}.")
    for h in heads:
        if h not in ("simplex_xent", "softmax_xent"):
            raise ValueError(f"head must be 'simplex_xent' or 'softmax_xent', got {h!r}.")
    torch = ct.import_torch()
    out = output_folder(out_dir, Path("experiments") / f"{canonical}-study", resume=resume)
    existed = out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        store = RunStore(out / "runs.jsonl")
        previous_threads = torch.get_num_threads()
        limiter = threadpool_limits(threads) if threads is not None else None
        if threads is not None:
            torch.set_num_threads(int(threads))
        try:
            X, y, _, _ = load_dataset(canonical, data_dir, dtype=np.float32)  # test rows unused
            X, y = _subsample(np.asarray(X, np.float32), np.asarray(y), max_train_rows)
            X_fit, y_fit, X_val, y_val = split_validation(X, y, val_fraction=val_fraction, seed=0)
            n_classes = int(y.max()) + 1
            sizes = [int(X.shape[1]), *hidden_t, n_classes]
            base = {
                "dataset": canonical,
                "rows": int(X.shape[0]),
                "val_fraction": val_fraction,
                "epochs": int(epochs),
                "rho": float(rho),
                "seed": int(seed),
            }
            lifted_info: dict[str, Any] = {}
            runs: list[dict[str, Any]] = []
            n_todo = len(heads) * (1 + len(output_scales) * len(learning_rates)) + len(
                learning_rates
            )
            bar = _bar(n_todo, progress, f"{canonical} study")
            try:
                for lr in learning_rates:
                    ident = {
                        "kind": "study_sgd",
                        "dataset": canonical,
                        "architecture": arch,
                        "seed": seed,
                        "init": "xavier",
                        "lr": float(lr),
                        "fingerprint": _fingerprint(base),
                    }
                    rec = store.get(**ident)
                    if rec is None:
                        model = ct.initialize("xavier", sizes, seed=seed)
                        tr = ct.train(
                            model,
                            X_fit,
                            y_fit,
                            X_val,
                            y_val,
                            epochs=epochs,
                            lr=lr,
                            rho=rho,
                            seed=seed,
                        )
                        rec = {**ident, "head": None, "scale": None, **_train_fields(tr)}
                        store.put(rec)
                    if bar is not None:
                        bar.update(1)
                    runs.append(rec)
                for head in heads:
                    cfg = {
                        "activation": "relu_fenchel",
                        "head": head,
                        "lam": float(lam),
                        "lifted_rho": float(rho),
                        "sweeps": int(sweeps),
                        "output_scale": "last",
                    }
                    fp = _fingerprint({**base, **cfg})
                    pre_id = {
                        "kind": "study_pretrain",
                        "dataset": canonical,
                        "architecture": arch,
                        "seed": seed,
                        "init": head,
                        "lr": None,
                        "fingerprint": fp,
                    }
                    weights = out / "cache" / f"{arch}_{head}_seed{seed}_{fp}.cvxl"
                    pre = store.get(**pre_id)
                    net = _lifted_network(sizes, cfg)
                    if pre is None or not _load_weights(weights, net):
                        net, fields = _pretrain(
                            sizes, seed, cfg, X_fit, y_fit, X_val, y_val, lifted_rule=False
                        )
                        _save_weights(weights, net)
                        fields["validation_accuracy"] = fields.pop("test_accuracy")
                        per_sweep = fields.pop("test_accuracy_per_sweep")
                        fields["validation_accuracy_per_sweep"] = per_sweep
                        pre = {**pre_id, **fields}
                        store.put(pre)
                    if bar is not None:
                        bar.update(1)
                    lifted_info[head] = pre
                    for scale in output_scales:
                        factor = 1.0 if scale == "none" else float(pre["output_scale"])
                        for lr in learning_rates:
                            ident = {
                                "kind": "study_sgd",
                                "dataset": canonical,
                                "architecture": arch,
                                "seed": seed,
                                "init": f"lifted:{head}:{scale}",
                                "lr": float(lr),
                                "fingerprint": _fingerprint({**base, "pretrain": fp}),
                            }
                            rec = store.get(**ident)
                            if rec is None:
                                model = ct.lifted_init(
                                    net, output_scale=factor, balance=scale == "balanced"
                                )
                                tr = ct.train(
                                    model,
                                    X_fit,
                                    y_fit,
                                    X_val,
                                    y_val,
                                    epochs=epochs,
                                    lr=lr,
                                    rho=rho,
                                    seed=seed,
                                )
                                rec = {**ident, "head": head, "scale": scale, **_train_fields(tr)}
                                store.put(rec)
                            if bar is not None:
                                bar.update(1)
                            runs.append(rec)
            finally:
                if bar is not None:
                    bar.close()
        finally:
            if threads is not None:
                torch.set_num_threads(previous_threads)
            if limiter is not None:
                limiter.restore_original_limits()
        markdown = _study_markdown(canonical, arch, base, lifted_info, runs, learning_rates, sweeps)
        (out / "study.md").write_text(markdown, encoding="utf-8")
        payload = {"config": base, "lifted": lifted_info, "runs": runs}
        (out / "study.json").write_text(json.dumps(_jsonable(payload), indent=1), encoding="utf-8")
        return {"lifted": lifted_info, "runs": runs, "markdown": markdown}

    except BaseException:
        _prune_empty(out, existed)
        raise


def _study_markdown(
    dataset: str,
    arch: str,
    base: dict[str, Any],
    lifted: dict[str, Any],
    runs: list[dict[str, Any]],
    learning_rates: Sequence[float],
    sweeps: int,
) -> str:
    lines = [
        f"# Study: lifted initialisation on {dataset}, hidden {arch} (validation split only)",
        "",
        f"{base['rows']} training rows, {base['val_fraction']:.0%} held out for validation; "
        f"seed {base['seed']}; {base['epochs']} epochs of plain SGD, batch 100, ρ = "
        f"{base['rho']:g}; lifted models: relu_fenchel, {sweeps} sweeps. Each cell: validation "
        "accuracy at epoch 0 → epoch 1 → last epoch.",
        "",
        "| lifted model | validation accuracy | fitted scale | pretraining s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for head, pre in lifted.items():
        lines.append(
            f"| {head} | {pre['validation_accuracy']:.4f} | {pre['output_scale']:.2f} | "
            f"{pre['seconds']:.1f} |"
        )
    lines += [
        "",
        "| initialisation | " + " | ".join(f"η = {lr:g}" for lr in learning_rates) + " |",
        "| --- | " + " | ".join("---:" for _ in learning_rates) + " |",
    ]
    names: list[str] = []
    for r in runs:
        if r["init"] not in names:
            names.append(r["init"])
    for name in names:
        cells = []
        for lr in learning_rates:
            match = [r for r in runs if r["init"] == name and r["lr"] == float(lr)]
            if not match:
                cells.append("–")
                continue
            acc = match[0]["test_accuracy"]
            cells.append(f"{acc[0]:.3f} → {acc[min(1, len(acc) - 1)]:.3f} → {acc[-1]:.3f}")
        label = "Xavier" if name == "xavier" else name.replace("lifted:", "lifted ")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    xavier = {r["lr"]: r for r in runs if r["init"] == "xavier"}
    heads = [h for h, pre in lifted.items() if pre.get("validation_accuracy_per_sweep")]
    if xavier and heads:
        lines += [
            "",
            "Time to accuracy: Xavier's validation accuracy after the last epoch (its SGD wall "
            "time), and the BCD sweeps (wall time) after which each lifted model alone reaches "
            "it:",
            "",
            "| η | Xavier | " + " | ".join(f"lifted {h} alone" for h in heads) + " |",
            "| ---: | ---: | " + " | ".join("---:" for _ in heads) + " |",
        ]
        for lr, run in sorted(xavier.items()):
            target = run["test_accuracy"][-1]
            cells = []
            for h in heads:
                acc = np.asarray(lifted[h]["validation_accuracy_per_sweep"])
                secs = lifted[h]["seconds_cumulative_per_sweep"]
                k = _first_reaching(acc, target)
                cells.append("never" if k is None else f"{_sweeps(k)} ({secs[k]:.1f} s)")
            lines.append(
                f"| {lr:g} | {target:.3f} ({run['seconds'][-1]:.1f} s) | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ command line
def add_reproduce_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``reproduce`` subcommand to a ``cvx-lifted`` subparsers object.

    The pair :func:`add_reproduce_parser` / :func:`run_reproduce` follows the pattern of
    :data:`cvx_lifted.cli.COMMANDS`: ``COMMANDS["reproduce"] = (add_reproduce_parser,
    run_reproduce)``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers()``.
    """
    p = subparsers.add_parser(
        "reproduce",
        help="reproduce the paper's Table 1 / Figure 1: lifted vs random initialisations",
        description="Train lifted networks, use them to initialise ReLU networks in PyTorch, "
        "train those and random-initialised twins (Normal, Xavier, σ²-scale) by mini-batch SGD, "
        "and write a Markdown table, Figure 1 (PNG), runs.csv and results.json. Resumable with "
        "--resume: finished runs are stored in OUT/runs.jsonl and never recomputed. Needs PyTorch "
        '(pip install torch==2.13.0, then pip install "cvx-lifted[torch,tune,plot]").',
    )
    p.add_argument("--dataset", choices=CLI_DATASETS, default="mnist-10k", help="data set")
    p.add_argument(
        "--quick",
        action="store_true",
        help="one architecture, 2 seeds, 3 epochs, 2 sweeps, 3,000 rows, no tuning (< 2 min)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="output folder (default experiments/DATASET, or experiments/DATASET-2, -3, ... when "
        "that one holds an earlier run)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in the output folder, reusing its finished runs (without it, an "
        "earlier run's folder is never written to)",
    )
    p.add_argument("--seeds", type=_positive_int, default=None, help="number of seeds (5)")
    p.add_argument(
        "--architectures",
        nargs="+",
        default=None,
        metavar="ARCH",
        help="hidden widths, e.g. 300 500-200-100 (default: the paper's five)",
    )
    p.add_argument("--epochs", type=_positive_int, default=None, help="SGD epochs (17)")
    p.add_argument(
        "--lr",
        nargs="+",
        default=None,
        metavar="LR",
        help="learning rates: paper:ETA (the paper's rate, x100 for the averaged loss), tuned, "
        "or a number (default: paper:1e-5 paper:1e-6 tuned)",
    )
    p.add_argument(
        "--inits",
        nargs="+",
        default=list(_INITS),
        metavar="INIT",
        help=f"initialisations (default: {' '.join(_INITS)})",
    )
    p.add_argument("--optimizer", default="sgd", help="sgd (the paper's) or adam")
    p.add_argument("--sweeps", type=_positive_int, default=None, help="BCD sweeps (8)")
    p.add_argument("--lam", default="tune", help="λ of the lifted model, or 'tune' (default)")
    p.add_argument(
        "--tune-trials", type=_non_negative_int, default=None, help="λ search budget (12)"
    )
    p.add_argument(
        "--head",
        default="simplex_xent",
        help="lifted output head: simplex_xent (default) or softmax_xent",
    )
    p.add_argument(
        "--output-scale",
        default="balanced",
        help="logit scale of the lifted init: balanced (default), last, none or a number",
    )
    p.add_argument(
        "--max-train-rows", type=_positive_int, default=None, help="subsample the training set"
    )
    p.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="the data set's folder of IDX files, or a folder holding mnist/, mnist-10k/, "
        "fashion-mnist/ like $CVX_LIFTED_DATA (default: $CVX_LIFTED_DATA)",
    )
    p.add_argument("--cache", default=None, help="cache of lifted weights (default OUT/cache)")
    p.add_argument(
        "--study",
        action="store_true",
        help="instead: compare lifted heads and output scalings at several learning rates on "
        "the validation split (study_lifted_init; default out experiments/DATASET-study)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_reproduce(args: argparse.Namespace) -> int:
    """Run ``cvx-lifted reproduce`` from parsed arguments; return the exit code.

    Parameters
    ----------
    args : argparse.Namespace
        From the parser built by :func:`add_reproduce_parser`.

    Returns
    -------
    int
        0 on success.

    Raises
    ------
    cvx_lifted.cli.UsageError
        For bad input (unknown initialisation or optimiser, bad architectures or rates, no
        PyTorch, missing data files are reported by the caller as OSError).
    """
    from cvx_lifted.cli import UsageError

    try:
        archs = [parse_architecture(a) for a in args.architectures] if args.architectures else None
        rates = [parse_learning_rate(s) for s in args.lr] if args.lr else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    bad = [i for i in args.inits if i not in _INITS]
    if bad:
        raise UsageError(f"unknown initialisation {bad[0]!r}; choose from {', '.join(_INITS)}.")
    if args.optimizer not in ("sgd", "adam"):
        raise UsageError(f"unknown optimizer {args.optimizer!r}; choose 'sgd' or 'adam'.")
    lam: float | str = args.lam
    if lam != "tune":
        try:
            lam = float(lam)
        except ValueError:
            raise UsageError(f"--lam must be a positive number or 'tune', got {lam!r}.") from None
    scale: float | str = args.output_scale
    if scale not in _OUTPUT_SCALES:
        try:
            scale = float(scale)
        except ValueError:
            raise UsageError(
                f"--output-scale must be one of {', '.join(_OUTPUT_SCALES)} or a number, got "
                f"{scale!r}."
            ) from None
    try:
        from cvx_lifted.interop.torch import import_torch

        import_torch()
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    dataset = str(args.dataset).strip().lower().replace("_", "-")
    default = Path("experiments") / (
        f"{dataset}-study" if args.study else f"{dataset}-quick" if args.quick else dataset
    )
    try:
        out = output_folder(args.out, default, resume=args.resume)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.out is None and out != default:
        print(f"{default} holds an earlier run (--resume continues it); writing to {out}")
    if args.study:
        try:
            study = study_lifted_init(
                args.dataset,
                archs[0] if archs else (300,),
                epochs=args.epochs or _DEFAULTS["epochs"],
                sweeps=args.sweeps or _DEFAULTS["sweeps"],
                max_train_rows=args.max_train_rows,
                out_dir=out,
                data_dir=args.data_dir,
                progress=not args.no_progress,
                resume=True,  # the folder was chosen above
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        print(study["markdown"])
        return 0
    try:
        result = reproduce(
            args.dataset,
            architectures=archs,
            seeds=args.seeds,
            epochs=args.epochs,
            learning_rates=[r.label for r in rates] if rates else None,
            out_dir=out,
            quick=args.quick,
            inits=args.inits,
            optimizer=args.optimizer,
            lam=lam,
            sweeps=args.sweeps,
            tune_trials=args.tune_trials,
            head=args.head,
            output_scale=scale,
            max_train_rows=args.max_train_rows,
            data_dir=args.data_dir,
            cache_dir=args.cache,
            progress=not args.no_progress,
            resume=True,  # the folder was chosen above
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(
        f"{result.computed} run(s) computed, {result.reused} reused from {result.paths['store']} "
        f"in {result.seconds:.0f} s"
    )
    for key in ("markdown", "csv", "pretrain_csv", "json"):
        print(f"wrote {result.paths[key]}")
    for fig in result.paths["figures"]:
        print(f"wrote {fig}")
    return 0

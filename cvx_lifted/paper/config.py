# SPDX-License-Identifier: Apache-2.0
"""What a run of the paper's experiment is: its constants, parsers and configurations.

:class:`ReproduceConfig` (for :func:`~cvx_lifted.paper.reproduce`) and :class:`StudyConfig`
(for :func:`~cvx_lifted.paper.study_lifted_init`) are frozen dataclasses that check every field
when they are built, so a bad value is refused before any data is read or any model trained.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from cvx_lifted._validation import (
    check_fraction,
    check_non_negative_float,
    check_non_negative_int,
    check_positive_float,
    check_positive_int,
)
from cvx_lifted.datasets import DATASETS
from cvx_lifted.interop.torch import INITS, OPTIMIZERS, paper_learning_rate

__all__ = [
    "ARCHITECTURES",
    "CLI_DATASETS",
    "DEFAULT_LAM",
    "DEFAULT_LEARNING_RATES",
    "FIGURE_ARCHITECTURES",
    "HEADS",
    "INITS",
    "INIT_LABELS",
    "LR_GRID",
    "OPTIMIZERS",
    "OUTPUT_SCALES",
    "PAPER_TABLE1",
    "QUICK",
    "LearningRate",
    "ReproduceConfig",
    "StudyConfig",
    "parse_architecture",
    "parse_lam",
    "parse_learning_rate",
    "parse_output_scale",
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
#: Output heads of the lifted model.
HEADS: tuple[str, ...] = ("simplex_xent", "softmax_xent")
#: Named logit scalings of the lifted initialisation (a positive number is a fixed factor).
OUTPUT_SCALES: tuple[str, ...] = ("balanced", "last", "none")
#: λ of the lifted model when it is not tuned (``lam="tune"`` with no trials).
DEFAULT_LAM = 1.0
#: What ``quick=True`` sets (for every field left at ``None``): < 2 minutes on MNIST-10k.
QUICK: dict[str, Any] = {
    "architectures": ((300,),),
    "seeds": 2,
    "epochs": 3,
    "sweeps": 2,
    "learning_rates": ("paper:1e-5", "paper:1e-6", 0.1),
    "tune_trials": 0,
    "max_train_rows": 3000,
}
# What a field left at None means without quick=True: the paper's protocol.
_FULL: dict[str, Any] = {
    "architectures": ARCHITECTURES,
    "seeds": 5,
    "epochs": 17,
    "sweeps": 8,
    "learning_rates": DEFAULT_LEARNING_RATES,
    "tune_trials": 12,
    "max_train_rows": None,
}

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


# ------------------------------------------------------------------------------ parsers
def parse_architecture(text: str | Sequence[int]) -> tuple[int, ...]:
    """Parse hidden-layer widths: ``"500-200-100"``, ``"500,200"`` or a sequence of ints.

    Parameters
    ----------
    text : str or sequence of int
        The widths.

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


def arch_name(hidden: Sequence[int]) -> str:
    """Return the name of hidden widths, e.g. ``"500-200-100"``."""
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

    @property
    def spec(self) -> str | float:
        """What :func:`parse_learning_rate` reads back as this rate: the label, or the number."""
        if self.paper_eta is None and self.value is not None:
            return self.value
        return self.label

    @property
    def rate(self) -> float:
        """The rate used for the batch-averaged loss.

        Raises
        ------
        ValueError
            For ``"tuned"`` before the rate has been tuned.
        """
        if self.value is None:
            raise ValueError(f"the learning rate {self.label!r} has not been tuned yet.")
        return self.value


def parse_learning_rate(spec: str | float) -> LearningRate:
    """Parse ``"paper:1e-5"`` (the paper's rate, translated), ``"tuned"`` or a number.

    Parameters
    ----------
    spec : str or float
        The rate.

    Returns
    -------
    LearningRate

    Raises
    ------
    ValueError
        For anything else, or a non-positive rate.
    """
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


def parse_lam(spec: str | float) -> float | str:
    """Parse λ of the lifted model: ``"tune"`` or a positive number (also as text).

    Parameters
    ----------
    spec : str or float
        ``"tune"``, a number, or a number written as text.

    Returns
    -------
    float or str
        The number, or ``"tune"``.

    Raises
    ------
    ValueError
        For anything else.
    """
    if isinstance(spec, str) and spec.strip().lower() == "tune":
        return "tune"
    try:
        value = float(spec)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(spec, bool) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"lam must be a positive number or 'tune', got {spec!r}.")
    return value


def parse_output_scale(spec: str | float) -> float | str:
    """Parse the lifted initialisation's logit scale: a name of :data:`OUTPUT_SCALES` or a number.

    Parameters
    ----------
    spec : str or float
        ``"balanced"``, ``"last"``, ``"none"``, a positive number or one written as text.

    Returns
    -------
    float or str

    Raises
    ------
    ValueError
        For anything else.
    """
    if isinstance(spec, str) and spec.strip().lower() in OUTPUT_SCALES:
        return spec.strip().lower()
    try:
        value = float(spec)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(spec, bool) or not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"output_scale must be one of {', '.join(OUTPUT_SCALES)} or a positive number, got "
            f"{spec!r}."
        )
    return value


def _canonical_dataset(name: str) -> str:
    canonical = str(name).strip().lower().replace("_", "-")
    if canonical not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    return canonical


def _optional_path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


def _check_choices(values: Sequence[str], name: str, choices: Sequence[str]) -> tuple[str, ...]:
    items = (values,) if isinstance(values, str) else tuple(values)
    unknown = [v for v in items if v not in choices]
    if unknown:
        raise ValueError(f"unknown {name} {unknown[0]!r}; choose from {', '.join(choices)}.")
    if not items:
        raise ValueError(f"give at least one {name}; choose from {', '.join(choices)}.")
    return items


def _set(config: Any, name: str, value: Any) -> None:
    # a frozen dataclass normalises its own fields once, while it is being built
    object.__setattr__(config, name, value)


# ------------------------------------------------------------------------------ reproduce
@dataclass(frozen=True)
class ReproduceConfig:
    r"""Everything a run of :func:`~cvx_lifted.paper.reproduce` depends on.

    Every field is checked when the configuration is built (``ValueError`` naming the field).
    Fields left at ``None`` take the paper's protocol, or :data:`QUICK` with ``quick=True``; the
    resolved values are the properties :attr:`hidden_layers`, :attr:`seed_list`,
    :attr:`n_epochs`, :attr:`n_sweeps`, :attr:`rates`, :attr:`n_tune_trials` and
    :attr:`train_rows`. Sequences are stored as tuples, paths as :class:`~pathlib.Path`,
    numbers given for ``lam`` and ``output_scale`` as floats, and ``dataset`` in its canonical
    spelling, so two configurations asking for the same run compare equal.

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
        Fill every field left at ``None`` from :data:`QUICK` (one architecture, 2 seeds,
        3 epochs, 2 sweeps, no tuning, 3,000 training rows): a smoke run of under 2 minutes.
    inits : sequence of str, default=("normal", "xavier", "variance_scaling", "lifted")
        Initialisations (:data:`INITS`).
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
        (with no tuning trials, λ = :data:`DEFAULT_LAM`).
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
        or, for an explicit ``out_dir``, a ``ValueError`` is raised.

    Raises
    ------
    ValueError
        For an unknown data set, initialisation, optimiser, head or output scale, bad sizes,
        counts or rates, naming the field.

    Examples
    --------
    >>> from cvx_lifted.paper import ReproduceConfig
    >>> cfg = ReproduceConfig(quick=True, inits=["xavier", "lifted"])
    >>> cfg.hidden_layers, cfg.seed_list, cfg.n_epochs
    (((300,),), (0, 1), 3)
    >>> cfg.default_out_dir.as_posix()
    'experiments/mnist-10k-quick'
    """

    dataset: str = "mnist-10k"
    architectures: Sequence[Sequence[int] | str] | None = None
    seeds: int | Sequence[int] | None = None
    epochs: int | None = None
    learning_rates: Sequence[str | float] | None = None
    out_dir: str | os.PathLike[str] | None = None
    quick: bool = False
    inits: Sequence[str] = INITS
    batch_size: int = 100
    optimizer: str = "sgd"
    momentum: float = 0.0
    rho: float = 1e-3
    lam: float | str = "tune"
    sweeps: int | None = None
    activation: str = "relu_fenchel"
    head: str = "simplex_xent"
    output_scale: str | float = "balanced"
    tune_trials: int | None = None
    tune_sweeps: int = 4
    tune_rows: int | None = 10000
    tune_timeout: float | None = 900.0
    lr_grid: Sequence[float] = LR_GRID
    val_fraction: float = 0.2
    max_train_rows: int | None = None
    figure_architectures: Sequence[Sequence[int] | str] | None = None
    lifted_rule: bool = True
    data_dir: str | os.PathLike[str] | None = None
    cache_dir: str | os.PathLike[str] | None = None
    threads: int | None = 1
    progress: bool = True
    resume: bool = True

    def __post_init__(self) -> None:
        _set(self, "dataset", _canonical_dataset(self.dataset))
        for name in ("architectures", "figure_architectures"):
            given = getattr(self, name)
            if given is not None:
                archs = tuple(parse_architecture(a) for a in _items(given))
                if not archs:
                    raise ValueError(f"{name}: give at least one architecture.")
                _set(self, name, archs)
        if self.seeds is not None and not isinstance(self.seeds, (numbers.Integral, str)):
            _set(self, "seeds", tuple(cast(Iterable[int], self.seeds)))
        if self.learning_rates is not None:
            specs = tuple(parse_learning_rate(s).spec for s in _items(self.learning_rates))
            _set(self, "learning_rates", specs)
        _set(self, "inits", _check_choices(self.inits, "initialisation", INITS))
        _check_choices(self.optimizer, "optimizer", OPTIMIZERS)
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}.")
        _set(self, "lam", parse_lam(self.lam))
        _set(self, "output_scale", parse_output_scale(self.output_scale))
        _set(self, "lr_grid", tuple(check_positive_float(v, "lr_grid") for v in self.lr_grid))
        for path in ("out_dir", "data_dir", "cache_dir"):
            _set(self, path, _optional_path(getattr(self, path)))
        self._check_numbers()
        # resolve every preset-dependent value once, so that a bad one is refused now
        _ = (self.hidden_layers, self.seed_list, self.n_epochs, self.n_sweeps, self.rates)
        _ = (self.n_tune_trials, self.train_rows)

    def _check_numbers(self) -> None:
        check_positive_int(self.batch_size, "batch_size")
        check_non_negative_float(self.momentum, "momentum")
        check_non_negative_float(self.rho, "rho")
        check_positive_int(self.tune_sweeps, "tune_sweeps")
        if self.tune_rows is not None:
            check_positive_int(self.tune_rows, "tune_rows")
        if self.tune_timeout is not None:
            check_positive_float(self.tune_timeout, "tune_timeout")
        check_fraction(self.val_fraction, "val_fraction")
        if self.threads is not None:
            check_positive_int(self.threads, "threads")

    def _preset(self, name: str) -> Any:
        given = getattr(self, name)
        if given is not None:
            return given
        return (QUICK if self.quick else _FULL)[name]

    @property
    def hidden_layers(self) -> tuple[tuple[int, ...], ...]:
        """The architectures run (hidden widths), in order."""
        return tuple(parse_architecture(a) for a in self._preset("architectures"))

    @property
    def seed_list(self) -> tuple[int, ...]:
        """The seeds run, in order."""
        seeds = self._preset("seeds")
        if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
            result = tuple(range(int(seeds)))
        elif isinstance(seeds, tuple):
            result = tuple(check_non_negative_int(s, "seeds") for s in seeds)
        else:
            result = ()
        if not result:
            raise ValueError(
                f"seeds must be a positive count or non-negative seeds, got {self.seeds!r}."
            )
        return result

    @property
    def n_epochs(self) -> int:
        """SGD epochs."""
        return check_positive_int(self._preset("epochs"), "epochs")

    @property
    def n_sweeps(self) -> int:
        """BCD sweeps of the lifted pretraining."""
        return check_positive_int(self._preset("sweeps"), "sweeps")

    @property
    def rates(self) -> tuple[LearningRate, ...]:
        """The learning rates, parsed (``"tuned"`` still without a value)."""
        rates = tuple(parse_learning_rate(s) for s in self._preset("learning_rates"))
        if not rates:
            raise ValueError("learning_rates: give at least one learning rate.")
        return rates

    @property
    def n_tune_trials(self) -> int:
        """Bayesian-optimisation budget for λ (0: not tuned)."""
        return check_non_negative_int(self._preset("tune_trials"), "tune_trials")

    @property
    def train_rows(self) -> int | None:
        """Training rows kept (a stratified subsample), or ``None`` for all of them."""
        rows = self._preset("max_train_rows")
        return None if rows is None else check_positive_int(rows, "max_train_rows")

    @property
    def default_out_dir(self) -> Path:
        """The output folder used when ``out_dir`` is ``None``."""
        return Path("experiments") / (f"{self.dataset}-quick" if self.quick else self.dataset)


def _items(value: Any) -> tuple[Any, ...]:
    """Return a sequence as a tuple, a single string or number as a tuple of one."""
    if isinstance(value, (str, int, float)):
        return (value,)
    return tuple(value)


# ------------------------------------------------------------------------------ study
@dataclass(frozen=True)
class StudyConfig:
    r"""Everything a run of :func:`~cvx_lifted.paper.study_lifted_init` depends on.

    Every field is checked when the configuration is built (``ValueError`` naming the field).

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
        Continue the study stored in the output folder; see :class:`ReproduceConfig`.

    Raises
    ------
    ValueError
        For an unknown data set, head or output scale, or bad sizes, counts or rates.
    """

    dataset: str = "mnist-10k"
    hidden: Sequence[int] | str = (300,)
    heads: Sequence[str] = HEADS
    output_scales: Sequence[str] = ("none", "last", "balanced")
    learning_rates: Sequence[float] = (1e-4, 1e-3, 1e-2, 0.1, 0.3)
    epochs: int = 17
    sweeps: int = 8
    lam: float = DEFAULT_LAM
    rho: float = 1e-3
    seed: int = 0
    max_train_rows: int | None = None
    val_fraction: float = 0.2
    out_dir: str | os.PathLike[str] | None = None
    data_dir: str | os.PathLike[str] | None = None
    threads: int | None = 1
    progress: bool = True
    resume: bool = True

    def __post_init__(self) -> None:
        _set(self, "dataset", _canonical_dataset(self.dataset))
        _set(self, "hidden", parse_architecture(self.hidden))
        _set(self, "heads", _check_choices(self.heads, "head", HEADS))
        scales = _check_choices(self.output_scales, "output scale", OUTPUT_SCALES)
        _set(self, "output_scales", scales)
        given = _items(self.learning_rates)
        rates = tuple(check_positive_float(v, "learning_rates") for v in given)
        if not rates:
            raise ValueError("learning_rates: give at least one learning rate.")
        _set(self, "learning_rates", rates)
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.sweeps, "sweeps")
        _set(self, "lam", check_positive_float(self.lam, "lam"))
        _set(self, "rho", check_non_negative_float(self.rho, "rho"))
        check_non_negative_int(self.seed, "seed")
        if self.max_train_rows is not None:
            check_positive_int(self.max_train_rows, "max_train_rows")
        check_fraction(self.val_fraction, "val_fraction")
        if self.threads is not None:
            check_positive_int(self.threads, "threads")
        for path in ("out_dir", "data_dir"):
            _set(self, path, _optional_path(getattr(self, path)))

    @property
    def hidden_layers(self) -> tuple[int, ...]:
        """The hidden widths, parsed."""
        return parse_architecture(self.hidden)

    @property
    def default_out_dir(self) -> Path:
        """The output folder used when ``out_dir`` is ``None``."""
        return Path("experiments") / f"{self.dataset}-study"

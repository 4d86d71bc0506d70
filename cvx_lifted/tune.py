# SPDX-License-Identifier: Apache-2.0
r"""Choose the lifted model's :math:`\lambda` (optionally :math:`\rho`) by Bayesian optimisation.

The paper (§7) selects :math:`\lambda` "using Bayesian Optimization". :func:`tune_lambda` does it
with `Optuna <https://optuna.org>`_ (``pip install "cvx-lifted[tune]"``): every trial fits a
:class:`~cvx_lifted.LiftedNetwork` for a few sweeps on a training part and scores its
feed-forward accuracy on a validation part carved from the *training* rows (stratified, seeded);
the test set is never an argument. :math:`\log\lambda` (and :math:`\log\rho`) is searched.

Why Optuna rather than scikit-optimize: Optuna is actively released (its Gaussian-process
sampler, :class:`optuna.samplers.GPSampler`, fits a Matérn-5/2 GP and maximises log expected
improvement: Bayesian optimisation in the paper's sense), takes both a trial budget and a wall
time budget in one call (``study.optimize(n_trials=..., timeout=...)``), and returns a tidy trial
table. scikit-optimize's upstream repository was archived (read-only) in February 2024; its
releases lag behind NumPy and scikit-learn. The GP sampler needs PyTorch and Optuna >= 3.6;
without them ``sampler="auto"`` falls back to Optuna's TPE sampler (also model-based) and says
so in :attr:`TuneResult.sampler`.

Reproducibility: the sampler is seeded and every fit uses ``random_state=seed``, so the same
call gives the same trial table (with one BLAS thread, as here). A ``timeout`` stops the study
from starting new trials once exceeded (a trial in progress is bounded by ``fit_time_limit``),
so with a timeout the number of trials, not their values, can vary between machines.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cvx_lifted._validation import (
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
)
from cvx_lifted.exceptions import SolverFailedError
from cvx_lifted.network import LiftedNetwork

__all__ = ["SAMPLERS", "TuneResult", "split_validation", "tune_lambda"]

#: Samplers of :func:`tune_lambda`: ``"gp"`` (Gaussian process, needs PyTorch), ``"tpe"``,
#: ``"auto"`` (GP when PyTorch is importable, else TPE).
SAMPLERS: tuple[str, ...] = ("auto", "gp", "tpe")

INSTALL_HINT = 'pip install "cvx-lifted[tune]"'


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - exercised only without optuna
        raise ImportError(f"cvx_lifted.tune needs Optuna: {INSTALL_HINT}.") from exc
    return optuna


@dataclass
class TuneResult:
    """Outcome of :func:`tune_lambda`.

    Attributes
    ----------
    best_params : dict of str to float
        ``{"lam": ..., "rho": ...}`` of the best trial (``rho`` fixed unless tuned).
    best_value : float
        Its validation accuracy.
    trials : list of dict
        One row per trial: ``number``, ``lam``, ``rho``, ``value`` (validation accuracy, ``None``
        for a failed trial), ``seconds``, ``sweeps``, ``state``.
    sampler : str
        ``"gp"`` or ``"tpe"``.
    seconds : float
        Wall time of the whole search.
    stopped_by : str
        ``"n_trials"`` or ``"timeout"``.
    config : dict
        The search settings (ranges, budget, sizes, seed, rows).
    """

    best_params: dict[str, float]
    best_value: float
    trials: list[dict[str, Any]] = field(default_factory=list)
    sampler: str = ""
    seconds: float = 0.0
    stopped_by: str = "n_trials"
    config: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the result as plain data (JSON-friendly)."""
        return asdict(self)

    def table(self) -> str:
        """Return the trial table as Markdown (best trial in bold)."""
        lines = [
            "| trial | λ | ρ | validation accuracy | sweeps | seconds |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in self.trials:
            value = "failed" if row["value"] is None else f"{row['value']:.4f}"
            best = row["value"] is not None and row["value"] == self.best_value
            if best:
                value = f"**{value}**"
            lines.append(
                f"| {row['number']} | {row['lam']:.4g} | {row['rho']:.3g} | {value} | "
                f"{row['sweeps']} | {row['seconds']:.1f} |"
            )
        return "\n".join(lines)


def split_validation(
    X: ArrayLike, y: ArrayLike, *, val_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Carve a stratified validation part out of training rows.

    Parameters
    ----------
    X : array_like, shape (m, n)
        Training inputs.
    y : array_like of int, shape (m,)
        Training labels.
    val_fraction : float, default=0.2
        Fraction of rows held out, in (0, 1).
    seed : int, default=0
        Seed of the split.

    Returns
    -------
    X_fit, y_fit, X_val, y_val : numpy.ndarray
    """
    from sklearn.model_selection import train_test_split

    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}.")
    X = np.asarray(X)
    y = np.asarray(y)
    counts = np.unique(y, return_counts=True)[1]
    stratify = y if counts.min() >= 2 else None
    X_fit, X_val, y_fit, y_val = train_test_split(
        X, y, test_size=val_fraction, random_state=seed, stratify=stratify
    )
    return X_fit, y_fit, X_val, y_val


def _log_range(name: str, bounds: Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(b) for b in bounds)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise ValueError(f"{name} must be two positive numbers lo < hi, got {tuple(bounds)!r}.")
    return lo, hi


def _check_settings(
    rho: float, n_trials: int, timeout: float | None, max_iter: int, sampler: str
) -> None:
    """Refuse bad budgets and settings of :func:`tune_lambda`, naming the argument."""
    check_non_negative_float(rho, "rho")
    check_positive_int(n_trials, "n_trials")
    if timeout is not None:
        check_positive_float(timeout, "timeout")
    check_positive_int(max_iter, "max_iter")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}.")


def _make_sampler(
    optuna: Any, sampler: str, seed: int, n_startup_trials: int, n_trials: int
) -> tuple[str, Any]:
    """Return the sampler's name (``"gp"`` or ``"tpe"``) and the Optuna sampler itself."""
    chosen = sampler
    if sampler == "auto":
        try:
            import torch  # noqa: F401

            chosen = "gp" if hasattr(optuna.samplers, "GPSampler") else "tpe"
        except ImportError:  # pragma: no cover - exercised only without torch
            chosen = "tpe"
    startup = max(1, min(int(n_startup_trials), int(n_trials)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
        if chosen == "gp":
            try:
                import torch  # noqa: F401
            except ImportError as exc:  # pragma: no cover
                raise ImportError(
                    "sampler='gp' needs PyTorch (pip install torch==2.13.0); use sampler='tpe'."
                ) from exc
            if not hasattr(optuna.samplers, "GPSampler"):  # pragma: no cover - Optuna < 3.6
                raise ImportError("sampler='gp' needs Optuna >= 3.6; use sampler='tpe'.")
            opt_sampler = optuna.samplers.GPSampler(
                seed=seed, n_startup_trials=startup, deterministic_objective=True
            )
        else:
            opt_sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    return chosen, opt_sampler


def tune_lambda(
    X: ArrayLike,
    y: ArrayLike,
    *,
    hidden: Sequence[int] = (300,),
    activation: str = "relu_fenchel",
    output: str = "simplex_xent",
    lam_range: Sequence[float] = (1e-2, 1e2),
    rho: float = 1e-3,
    tune_rho: bool = False,
    rho_range: Sequence[float] = (1e-5, 1e-1),
    validation: tuple[ArrayLike, ArrayLike] | None = None,
    val_fraction: float = 0.2,
    max_rows: int | None = None,
    n_trials: int = 20,
    timeout: float | None = None,
    max_iter: int = 3,
    fit_time_limit: float | None = None,
    sampler: str = "auto",
    n_startup_trials: int = 4,
    seed: int = 0,
    dtype: Any = np.float32,
    verbose: bool = False,
) -> TuneResult:
    r"""Search :math:`\log\lambda` (optionally :math:`\log\rho`) by Bayesian optimisation.

    Each trial fits a lifted network ``[n_features, *hidden, n_classes]`` for ``max_iter``
    sweeps (seeded) on the fit part and returns its feed-forward accuracy on the validation part.

    Parameters
    ----------
    X : array_like, shape (m, n)
        Training inputs (never test rows).
    y : array_like of int, shape (m,)
        Training labels ``0..k-1``.
    hidden : sequence of int, default=(300,)
        Hidden layer widths.
    activation : str, default="relu_fenchel"
        Hidden activation.
    output : str, default="simplex_xent"
        Output head (a classification head).
    lam_range : (float, float), default=(1e-2, 1e2)
        Log-uniform search interval of :math:`\lambda`.
    rho : float, default=1e-3
        :math:`\rho` when it is not tuned.
    tune_rho : bool, default=False
        Search :math:`\log\rho` in ``rho_range`` too.
    rho_range : (float, float), default=(1e-5, 1e-1)
        Log-uniform search interval of :math:`\rho`.
    validation : (X_val, y_val), optional
        An explicit validation set (also carved from training rows); default: a stratified
        ``val_fraction`` of ``(X, y)``.
    val_fraction : float, default=0.2
        Held-out fraction when ``validation`` is not given.
    max_rows : int, optional
        Fit on at most this many rows of the fit part (a short, cheap fit per trial).
    n_trials : int, default=20
        Trial budget.
    timeout : float, optional
        Wall-time budget in seconds (no new trial starts after it).
    max_iter : int, default=3
        Sweeps per trial.
    fit_time_limit : float, optional
        Wall-time cap of one trial's fit (checked after each sweep).
    sampler : {"auto", "gp", "tpe"}, default="auto"
        Optuna sampler (see :data:`SAMPLERS`).
    n_startup_trials : int, default=4
        Random trials before the model-based sampler takes over.
    seed : int, default=0
        Seed of the sampler, of the split and of every fit.
    dtype : float32 or float64, default=float32
        Floating type of the fits.
    verbose : bool, default=False
        Let Optuna log every trial.

    Returns
    -------
    TuneResult

    Raises
    ------
    ValueError
        For bad ranges, budgets, an unknown sampler or labels that are not ``0..k-1``.
    ImportError
        Without Optuna, or with ``sampler="gp"`` and no PyTorch.

    Examples
    --------
    >>> from cvx_lifted.datasets import load_digits
    >>> X, y, _, _ = load_digits()
    >>> res = tune_lambda(X, y, hidden=(16,), n_trials=3, max_iter=1)  # doctest: +SKIP
    >>> sorted(res.best_params)  # doctest: +SKIP
    ['lam', 'rho']
    """
    optuna = _import_optuna()
    lam_lo, lam_hi = _log_range("lam_range", lam_range)
    rho_lo, rho_hi = _log_range("rho_range", rho_range)
    _check_settings(rho, n_trials, timeout, max_iter, sampler)
    X = np.asarray(X, dtype=dtype)
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu" or y.shape[0] != X.shape[0]:
        raise ValueError("y must be 1-D integer labels, one per row of X.")
    if validation is None:
        X_fit, y_fit, X_val, y_val = split_validation(X, y, val_fraction=val_fraction, seed=seed)
    else:
        X_fit, y_fit = X, y
        X_val, y_val = np.asarray(validation[0], dtype=dtype), np.asarray(validation[1])
    if max_rows is not None and X_fit.shape[0] > max_rows:
        X_fit, y_fit = X_fit[: int(max_rows)], y_fit[: int(max_rows)]
    n_classes = int(max(y.max(), y_val.max())) + 1
    sizes = [X.shape[1], *[int(h) for h in hidden], n_classes]
    Y_fit = np.eye(n_classes, dtype=dtype)[y_fit]

    chosen, opt_sampler = _make_sampler(optuna, sampler, seed, n_startup_trials, n_trials)
    previous_level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.ERROR)
    rows: list[dict[str, Any]] = []

    def objective(trial: Any) -> float:
        lam = trial.suggest_float("lam", lam_lo, lam_hi, log=True)
        trial_rho = trial.suggest_float("rho", rho_lo, rho_hi, log=True) if tune_rho else rho
        net = LiftedNetwork(
            sizes, activation=activation, output=output, lam=lam, rho=trial_rho, dtype=dtype
        )
        t0 = time.perf_counter()
        row = {"number": trial.number, "lam": lam, "rho": trial_rho, "value": None}
        try:
            result = net.fit(
                X_fit,
                Y_fit,
                max_iter=int(max_iter),
                tol=0.0,
                random_state=seed,
                time_limit=fit_time_limit,
            )
            value = float(np.mean(net.predict(X_val).argmax(axis=1) == y_val))
            row.update(value=value, sweeps=result.n_iter, state="complete")
            return value
        except SolverFailedError:
            row.update(sweeps=0, state="failed")
            raise
        finally:
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)

    study = optuna.create_study(direction="maximize", sampler=opt_sampler)
    t_start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
            study.optimize(
                objective, n_trials=int(n_trials), timeout=timeout, catch=(SolverFailedError,)
            )
    finally:
        optuna.logging.set_verbosity(previous_level)
    seconds = time.perf_counter() - t_start
    done = [r for r in rows if r["value"] is not None]
    if not done:
        raise RuntimeError("every tuning trial failed; widen lam_range or check the data.")
    best = max(done, key=lambda r: (r["value"], -r["number"]))
    config = {
        "hidden": [int(h) for h in hidden],
        "activation": activation,
        "output": output,
        "lam_range": [lam_lo, lam_hi],
        "rho": rho,
        "tune_rho": bool(tune_rho),
        "rho_range": [rho_lo, rho_hi],
        "n_trials": int(n_trials),
        "timeout": timeout,
        "max_iter": int(max_iter),
        "seed": int(seed),
        "fit_rows": int(X_fit.shape[0]),
        "validation_rows": int(X_val.shape[0]),
        "dtype": np.dtype(dtype).name,
    }
    return TuneResult(
        best_params={"lam": float(best["lam"]), "rho": float(best["rho"])},
        best_value=float(best["value"]),
        trials=rows,
        sampler=chosen,
        seconds=seconds,
        stopped_by="n_trials" if len(rows) >= int(n_trials) else "timeout",
        config=config,
    )

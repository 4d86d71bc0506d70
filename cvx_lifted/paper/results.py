# SPDX-License-Identifier: Apache-2.0
"""What a run of the paper's experiment produced, and the numbers of its tables.

:class:`ReproduceResult` holds the records; :func:`summarise` turns them into Table 1 (mean ±
std over seeds by learning rate and architecture), the time-to-accuracy comparison with Xavier
and the wall time of each phase.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cvx_lifted.paper.config import LearningRate, arch_name

__all__ = ["ReproduceResult", "first_reaching", "mean_curves", "mean_std", "select", "summarise"]

Curves = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class ReproduceResult:
    """What :func:`~cvx_lifted.paper.reproduce` produced.

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


# ------------------------------------------------------------------------------ statistics
def select(
    runs: Iterable[dict[str, Any]], arch: str, init: str, lr: float | None
) -> list[dict[str, Any]]:
    """Return the SGD runs of one architecture, initialisation and learning rate."""
    return [r for r in runs if r["architecture"] == arch and r["init"] == init and r["lr"] == lr]


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Return the mean and the standard deviation (ddof=1; NaN, undefined, for fewer than two)."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
    return float(arr.mean()), std


def mean_curves(runs: list[dict[str, Any]]) -> Curves:
    """Return the mean and std test accuracy per epoch, and the mean wall time per epoch."""
    acc = np.asarray([r["test_accuracy"] for r in runs], dtype=np.float64)
    secs = np.asarray([r["seconds"] for r in runs], dtype=np.float64)
    std = acc.std(axis=0, ddof=1) if acc.shape[0] > 1 else np.zeros(acc.shape[1])
    return acc.mean(axis=0), std, secs.mean(axis=0)


def first_reaching(curve: np.ndarray, target: float) -> int | None:
    """Return the first index where ``curve`` reaches ``target`` (to 1e-12), or ``None``."""
    hits = np.flatnonzero(curve >= target - 1e-12)
    return int(hits[0]) if hits.size else None


# ------------------------------------------------------------------------------ summary
def _table_row(
    pres: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    arch: str,
    rate: LearningRate,
    inits: Sequence[str],
) -> tuple[dict[str, Any], dict[str, Curves]]:
    row: dict[str, Any] = {
        "our_model": mean_std(p["test_accuracy"] for p in pres),
        "our_model_lifted_rule": mean_std(
            p["test_accuracy_lifted_rule"] for p in pres if "test_accuracy_lifted_rule" in p
        ),
        "pretrain_seconds": mean_std(p["seconds"] for p in pres),
    }
    curves: dict[str, Curves] = {}
    for init in inits:
        chosen = select(runs, arch, init, rate.value)
        if not chosen:
            continue
        row[init] = mean_std(r["test_accuracy"][-1] for r in chosen)
        row[f"{init}_seconds"] = mean_std(r["seconds"][-1] for r in chosen)
        row[f"{init}_diverged"] = int(sum(r["diverged"] for r in chosen))
        curves[init] = mean_curves(chosen)
    return row, curves


def _reach_entry(
    pres: list[dict[str, Any]], curves: dict[str, Curves], pretrain_seconds: float, n_epochs: int
) -> dict[str, Any]:
    """Return when each initialisation (and the lifted model alone) reaches Xavier's accuracy."""
    target = float(curves["xavier"][0][-1])
    entry: dict[str, Any] = {"target": target}
    for init, (mean, _std, secs) in curves.items():
        epoch = first_reaching(mean, target)
        seconds = None if epoch is None else float(secs[epoch])
        if seconds is not None and init == "lifted":
            seconds += pretrain_seconds
        entry[init] = {"epochs": epoch, "seconds": seconds}
    alone = [p for p in pres if p.get("test_accuracy_per_sweep")]
    if alone and len({len(p["test_accuracy_per_sweep"]) for p in alone}) == 1:
        acc = np.mean([p["test_accuracy_per_sweep"] for p in alone], axis=0)
        sweep_secs = np.mean([p["seconds_cumulative_per_sweep"] for p in alone], axis=0)
        k = first_reaching(acc, target)
        entry["lifted_model"] = {
            "sweeps": k,
            "seconds": None if k is None else float(sweep_secs[k]),
        }
    if "lifted" in entry:
        lifted_e = entry["lifted"]["epochs"]
        xav_s = entry["xavier"]["seconds"]
        entry["lifted_within_third"] = bool(lifted_e is not None and lifted_e <= n_epochs / 3)
        entry["lifted_time_le_xavier"] = bool(
            entry["lifted"]["seconds"] is not None
            and xav_s is not None
            and entry["lifted"]["seconds"] <= xav_s
        )
        # the other way round: when does Xavier reach the lifted init's final accuracy?
        lifted_final = float(curves["lifted"][0][-1])
        entry["xavier_reaches_lifted_final"] = first_reaching(curves["xavier"][0], lifted_final)
    return entry


def _phase_seconds(res: ReproduceResult, inits: Sequence[str]) -> dict[str, float]:
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
    return phases


def summarise(
    res: ReproduceResult,
    archs: Sequence[tuple[int, ...]],
    rates: Sequence[LearningRate],
    inits: Sequence[str],
    n_epochs: int,
) -> dict[str, Any]:
    """Return Table 1 and the time-to-accuracy entries by learning rate, and the phase times.

    Parameters
    ----------
    res : ReproduceResult
        The records so far.
    archs : sequence of tuple of int
        Architectures, in table order.
    rates : sequence of LearningRate
        Learning rates (tuned ones with their value).
    inits : sequence of str
        Initialisations, in column order.
    n_epochs : int
        SGD epochs.

    Returns
    -------
    dict
        ``tables`` and ``reach`` (by rate label, then architecture) and ``phase_seconds``.
    """
    summary: dict[str, Any] = {"tables": {}, "reach": {}, "phase_seconds": {}}
    pre_by_arch: dict[str, list[dict[str, Any]]] = {}
    for p in res.pretrain:
        pre_by_arch.setdefault(p["architecture"], []).append(p)
    for rate in rates:
        table: dict[str, Any] = {}
        reach: dict[str, Any] = {}
        for hidden in archs:
            arch = arch_name(hidden)
            pres = pre_by_arch.get(arch, [])
            if not pres:
                continue
            row, curves = _table_row(pres, res.runs, arch, rate, inits)
            table[arch] = row
            if "xavier" in curves:
                pre_s = float(row["pretrain_seconds"][0])
                reach[arch] = _reach_entry(pres, curves, pre_s, n_epochs)
        summary["tables"][rate.label] = table
        summary["reach"][rate.label] = reach
    summary["phase_seconds"] = _phase_seconds(res, inits)
    return summary

# SPDX-License-Identifier: Apache-2.0
"""Run (or resume) the paper's §7 experiment: :func:`reproduce`.

One call is one :class:`_Experiment`: tune λ and the standard learning rate on the validation
split, then for every seed and architecture pretrain the lifted model and run SGD from every
initialisation at every learning rate. Everything finished goes to the run store at once and is
never recomputed; the outputs are rewritten after every (seed, architecture) pair.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from cvx_lifted.interop import torch as ct
from cvx_lifted.network import LiftedNetwork
from cvx_lifted.paper import runs
from cvx_lifted.paper.config import (
    DEFAULT_LAM,
    INIT_LABELS,
    LearningRate,
    ReproduceConfig,
    arch_name,
)
from cvx_lifted.paper.report import ReportSpec, write_outputs
from cvx_lifted.paper.results import ReproduceResult
from cvx_lifted.paper.runs import LiftedSettings
from cvx_lifted.paper.store import RunStore, fingerprint, output_folder, prune_empty
from cvx_lifted.tune import split_validation, tune_lambda

__all__ = ["reproduce"]


def reproduce(config: ReproduceConfig | None = None, /, **overrides: Any) -> ReproduceResult:
    r"""Run (or resume) the paper's §7 experiment and write its tables, figures and raw results.

    Parameters
    ----------
    config : ReproduceConfig, optional
        The run (default: ``ReproduceConfig()``, the paper's protocol on MNIST-10k).
    **overrides
        Fields of :class:`~cvx_lifted.paper.ReproduceConfig` to set (on ``config`` when given),
        e.g. ``reproduce(dataset="fashion-mnist", quick=True)``.

    Returns
    -------
    ReproduceResult

    Raises
    ------
    ValueError
        For a bad field (see :class:`~cvx_lifted.paper.ReproduceConfig`), or an output folder
        that holds an earlier run when ``resume`` is false; before any data is read.
    TypeError
        For an override that is not a field.
    ImportError
        Without PyTorch (or without Optuna when λ is tuned).

    Notes
    -----
    A folder created by this call is removed again if the call fails before writing anything
    into it.
    """
    t_call = time.perf_counter()
    if config is None:
        config = ReproduceConfig(**overrides)
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    ct.import_torch()
    out = output_folder(config.out_dir, config.default_out_dir, resume=config.resume)
    existed = out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        exp = _Experiment(config, out, t_call)
        with runs.limited_threads(config.threads):
            X, y, X_test, y_test = runs.load_rows(
                config.dataset, config.data_dir, config.train_rows
            )
            exp.set_data(X, y, X_test, y_test)
            exp.run()
        exp.res.seconds = time.perf_counter() - t_call
        return exp.res
    except BaseException:
        prune_empty(out, existed)
        raise


class _Experiment:
    """One call of :func:`reproduce`: tuning, pretraining and SGD runs, all resumable.

    Parameters
    ----------
    config : ReproduceConfig
        The run.
    out : pathlib.Path
        Its output folder (exists).
    t_call : float
        ``time.perf_counter()`` when the call started.
    """

    def __init__(self, config: ReproduceConfig, out: Path, t_call: float) -> None:
        self.config = config
        self.dataset = config.dataset
        self.archs = list(config.hidden_layers)
        self.seeds = list(config.seed_list)
        self.rates = list(config.rates)  # "tuned" gets its value in tune_lr
        self.inits = list(config.inits)
        self.epochs = config.n_epochs
        self.out = out
        self.cache = Path(config.cache_dir) if config.cache_dir is not None else out / "cache"
        self.t_call = t_call
        # the dicts below are fingerprinted: their keys and values name the protocol
        self.train_cfg: dict[str, Any] = {
            "batch_size": int(config.batch_size),
            "optimizer": config.optimizer,
            "momentum": float(config.momentum),
            "rho": float(config.rho),
        }
        self.lifted_cfg: LiftedSettings = {
            "activation": config.activation,
            "head": config.head,
            "lam": config.lam,
            "lifted_rho": float(config.rho),
            "sweeps": config.n_sweeps,
            "output_scale": config.output_scale,
        }
        self.tune_cfg: dict[str, Any] = {
            "trials": config.n_tune_trials,
            "sweeps": int(config.tune_sweeps),
            "rows": config.tune_rows,
            "timeout": config.tune_timeout,
            "lr_grid": [float(v) for v in config.lr_grid],
        }
        self.meta: dict[str, Any] = {
            "quick": bool(config.quick),
            "threads": config.threads,
            "load_average_at_start": runs.load_average(),
        }
        self.store = RunStore(out / "runs.jsonl")
        self.res = ReproduceResult(out_dir=out)
        self.bar: Any = None
        self.pretrain_fp = ""  # set in run(), once λ is known
        self.data_id: dict[str, Any] = {}
        self.n_classes = self.n_features = 0

    # ---------------------------------------------------------------- set-up
    def set_data(
        self, X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray
    ) -> None:
        """Keep the data and carve the validation split (stratified, seed 0) from ``X``."""
        val_fraction = self.config.val_fraction
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

    def sizes(self, hidden: tuple[int, ...]) -> list[int]:
        return [self.n_features, *hidden, self.n_classes]

    def _train_kwargs(self) -> dict[str, Any]:
        return {**self.train_cfg, "epochs": self.epochs}

    # ---------------------------------------------------------------- tuning
    def tune_lam(self) -> None:
        """Choose λ by Bayesian optimisation on the validation split (stored), unless given."""
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
            fp = fingerprint(cfg)
            record = self.store.get(kind="tune_lambda", dataset=self.dataset, fingerprint=fp)
            if record is None:
                record = self._search_lambda(cfg, fp)
            lam = float(record["best_params"]["lam"])
        elif lam == "tune":
            lam = DEFAULT_LAM
        self.lifted_cfg["lam"] = float(lam)
        self.res.tuning["lambda"] = record

    def _search_lambda(self, cfg: dict[str, Any], fp: str) -> dict[str, Any]:
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
        return record

    def tune_lr(self) -> None:
        """Choose the ``"tuned"`` rate: the best of the grid for Xavier on the validation split."""
        if not any(r.label == "tuned" for r in self.rates):
            self.res.tuning["learning_rate"] = None
            return
        hidden = self.archs[0]
        fp = fingerprint({**self.data_id, **self._train_kwargs(), "hidden": list(hidden)})
        records = [self._lr_candidate(hidden, float(lr), fp) for lr in self.tune_cfg["lr_grid"]]
        best = max(records, key=lambda r: (r["validation_accuracy"][-1], -r["lr"]))
        self.rates = [
            LearningRate("tuned", float(best["lr"])) if r.label == "tuned" else r
            for r in self.rates
        ]
        self.res.tuning["learning_rate"] = {
            "architecture": arch_name(hidden),
            "grid": list(self.tune_cfg["lr_grid"]),
            "chosen": float(best["lr"]),
            "validation_final": {f"{r['lr']:g}": r["validation_accuracy"][-1] for r in records},
            "diverged": {f"{r['lr']:g}": r["diverged"] for r in records},
            "seconds": float(sum(r["seconds"][-1] + r["eval_seconds"] for r in records)),
        }

    def _lr_candidate(self, hidden: tuple[int, ...], lr: float, fp: str) -> dict[str, Any]:
        ident = {
            "kind": "tune_lr",
            "dataset": self.dataset,
            "architecture": arch_name(hidden),
            "seed": 0,
            "init": "xavier",
            "lr": lr,
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
                lr=lr,
                seed=0,
                **self._train_kwargs(),
            )
            fields = runs.train_fields(tr)
            fields["validation_accuracy"] = fields.pop("test_accuracy")
            rec = {**ident, **fields}
            self.store.put(rec)
            self.res.computed += 1
        return rec

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
            "lr": rate.rate,
            "fingerprint": fingerprint(payload),
        }

    # ---------------------------------------------------------------- runs
    def _fit_lifted(self, hidden: tuple[int, ...], seed: int, lifted_rule: bool) -> Any:
        return runs.pretrain(
            self.sizes(hidden),
            seed,
            self.lifted_cfg,
            (self.X, self.y),
            (self.X_test, self.y_test),
            lifted_rule,
        )

    def pretrain(
        self, hidden: tuple[int, ...], seed: int
    ) -> tuple[LiftedNetwork | None, dict[str, Any]]:
        """Return the lifted network (``None`` if stored and not needed yet) and its record."""
        arch = arch_name(hidden)
        ident = self.pre_ident(arch, seed)
        record = self.store.get(**ident)
        if record is not None:
            self.res.reused += 1
            return None, record
        self._say(f"{arch} seed {seed}: lifted pretraining")
        net, fields = self._fit_lifted(hidden, seed, self.config.lifted_rule)
        runs.cache_weights(self.weights_path(arch, seed), net)
        record = {**ident, **fields, "lam": self.lifted_cfg["lam"], "config": self.lifted_cfg}
        self.store.put(record)
        self.res.computed += 1
        self._tick()
        return net, record

    def weights_path(self, arch: str, seed: int) -> Path:
        return self.cache / self.dataset / f"{arch}_seed{seed}_{self.pretrain_fp}.cvxl"

    def lifted_network(self, hidden: tuple[int, ...], seed: int) -> LiftedNetwork:
        """Load the cached lifted weights, or refit (deterministic) when the cache is gone."""
        arch = arch_name(hidden)
        net = runs.lifted_network(self.sizes(hidden), self.lifted_cfg)
        if runs.load_cached_weights(self.weights_path(arch, seed), net):
            return net
        self._say(f"{arch} seed {seed}: lifted pretraining (weights not cached)")
        net, _ = self._fit_lifted(hidden, seed, False)
        runs.cache_weights(self.weights_path(arch, seed), net)
        return net

    def sgd(
        self,
        hidden: tuple[int, ...],
        seed: int,
        init: str,
        rate: LearningRate,
        net: LiftedNetwork | None,
        pre: dict[str, Any],
    ) -> tuple[LiftedNetwork | None, dict[str, Any]]:
        """Return the lifted network (loaded if this run needed it) and the SGD run's record."""
        arch = arch_name(hidden)
        ident = self.sgd_ident(arch, seed, init, rate)
        run = self.store.get(**ident)
        if run is None:
            self._say(f"{arch} seed {seed}: {INIT_LABELS[init]}, η={rate.rate:g}")
            if init == "lifted" and net is None:
                net = self.lifted_network(hidden, seed)
            model = runs.model_for(
                init,
                self.sizes(hidden),
                seed,
                net,
                float(pre["output_scale"]),
                balanced=self.lifted_cfg["output_scale"] == "balanced",
            )
            tr = ct.train(
                model,
                self.X,
                self.y,
                self.X_test,
                self.y_test,
                lr=rate.rate,
                seed=seed,
                **self._train_kwargs(),
            )
            run = {
                **ident,
                **runs.train_fields(tr),
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
            arch = arch_name(hidden)
            for seed in self.seeds:
                todo += self.store.get(**self.pre_ident(arch, seed)) is None
                for rate in self.rates:
                    for init in self.inits:
                        todo += self.store.get(**self.sgd_ident(arch, seed, init, rate)) is None
        return todo

    def run(self) -> None:
        """Tune, then run every seed and architecture; write the outputs after each pair."""
        self.tune_lam()
        self.tune_lr()
        self.pretrain_fp = fingerprint({**self.data_id, **self.lifted_cfg})
        self.bar = runs.progress_bar(self.count_todo(), self.config.progress, self.dataset)
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
            "architectures": [arch_name(a) for a in self.archs],
            "learning_rates": [dataclasses.asdict(r) for r in self.rates],
            "inits": self.inits,
        }
        spec = ReportSpec(
            dataset=self.dataset,
            archs=tuple(self.archs),
            seeds=tuple(self.seeds),
            rates=tuple(self.rates),
            inits=tuple(self.inits),
            epochs=self.epochs,
            figure_architectures=self.config.figure_architectures,
            meta=meta,
            t_call=self.t_call,
        )
        write_outputs(self.res, spec)

    # ---------------------------------------------------------------- progress
    def _say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=True)
        elif self.config.progress:
            from tqdm.auto import tqdm

            tqdm.write(f"[reproduce {self.dataset}] {text}")

    def _tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

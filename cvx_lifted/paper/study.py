# SPDX-License-Identifier: Apache-2.0
"""Where the protocol's choices come from: :func:`study_lifted_init`, on the validation split.

For each output head the lifted model is fitted on the fit part of the training rows; each
output scaling (``"none"``, ``"last"``: the fitted temperature on the last layer,
``"balanced"``: spread over the layers, see :func:`~cvx_lifted.interop.torch.lifted_init`) is
fine-tuned at each learning rate, next to a Xavier baseline with the same batches, and scored on
the validation part after every epoch. Nothing touches the test rows.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from cvx_lifted.interop import torch as ct
from cvx_lifted.network import LiftedNetwork
from cvx_lifted.paper import runs
from cvx_lifted.paper.config import StudyConfig, arch_name
from cvx_lifted.paper.report import sweeps_text
from cvx_lifted.paper.results import first_reaching
from cvx_lifted.paper.runs import LiftedSettings
from cvx_lifted.paper.store import RunStore, fingerprint, jsonable, output_folder, prune_empty
from cvx_lifted.tune import split_validation

__all__ = ["study_lifted_init"]


def study_lifted_init(config: StudyConfig | None = None, /, **overrides: Any) -> dict[str, Any]:
    r"""Compare ways to turn a lifted network into an initialisation, on the validation split.

    Resumable like :func:`~cvx_lifted.paper.reproduce` (``<out>/runs.jsonl``).

    Parameters
    ----------
    config : StudyConfig, optional
        The study (default: ``StudyConfig()``: 784-300-10 on MNIST-10k).
    **overrides
        Fields of :class:`~cvx_lifted.paper.StudyConfig` to set (on ``config`` when given),
        e.g. ``study_lifted_init(dataset="fashion-mnist", max_train_rows=20000)``.

    Returns
    -------
    dict
        ``"lifted"`` (validation accuracy and seconds of each head), ``"runs"`` (one record per
        fine-tuning run) and ``"markdown"`` (the study table), also written to
        ``<out>/study.md`` and ``<out>/study.json``.

    Raises
    ------
    ValueError
        For a bad field (see :class:`~cvx_lifted.paper.StudyConfig`), or an output folder that
        holds an earlier study when ``resume`` is false; before any data is read.
    ImportError
        Without PyTorch.
    """
    if config is None:
        config = StudyConfig(**overrides)
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    ct.import_torch()
    out = output_folder(config.out_dir, config.default_out_dir, resume=config.resume)
    existed = out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        study = _Study(config, out)
        with runs.limited_threads(config.threads):
            study.run()
        markdown = study.markdown()
        (out / "study.md").write_text(markdown, encoding="utf-8")
        payload = {"config": study.base, "lifted": study.lifted, "runs": study.runs}
        (out / "study.json").write_text(json.dumps(jsonable(payload), indent=1), encoding="utf-8")
        return {"lifted": study.lifted, "runs": study.runs, "markdown": markdown}
    except BaseException:
        prune_empty(out, existed)
        raise


class _Study:
    """One call of :func:`study_lifted_init`."""

    def __init__(self, config: StudyConfig, out: Path) -> None:
        self.config = config
        self.out = out
        self.hidden = config.hidden_layers
        self.arch = arch_name(self.hidden)
        self.store = RunStore(out / "runs.jsonl")
        self.lifted: dict[str, Any] = {}
        self.runs: list[dict[str, Any]] = []
        self.base: dict[str, Any] = {}
        self.bar: Any = None

    def run(self) -> None:
        cfg = self.config
        X, y, _, _ = runs.load_rows(cfg.dataset, cfg.data_dir, cfg.max_train_rows)  # no test rows
        self.fit = split_validation(X, y, val_fraction=cfg.val_fraction, seed=0)
        self.sizes = [int(X.shape[1]), *self.hidden, int(y.max()) + 1]
        self.base = {
            "dataset": cfg.dataset,
            "rows": int(X.shape[0]),
            "val_fraction": cfg.val_fraction,
            "epochs": int(cfg.epochs),
            "rho": float(cfg.rho),
            "seed": int(cfg.seed),
        }
        n_rates = len(cfg.learning_rates)
        n_todo = len(cfg.heads) * (1 + len(cfg.output_scales) * n_rates) + n_rates
        self.bar = runs.progress_bar(n_todo, cfg.progress, f"{cfg.dataset} study")
        try:
            for lr in cfg.learning_rates:
                self.runs.append(self._sgd("xavier", lr, fingerprint(self.base), None, {}))
            for head in cfg.heads:
                self._head(head)
        finally:
            if self.bar is not None:
                self.bar.close()

    def _head(self, head: str) -> None:
        """Pretrain the lifted model with ``head``, then fine-tune every scaling at every rate."""
        cfg = self.config
        settings: LiftedSettings = {
            "activation": "relu_fenchel",
            "head": head,
            "lam": float(cfg.lam),
            "lifted_rho": float(cfg.rho),
            "sweeps": int(cfg.sweeps),
            "output_scale": "last",
        }
        fp = fingerprint({**self.base, **settings})
        net, pre = self._pretrain(head, settings, fp)
        self.lifted[head] = pre
        for scale in cfg.output_scales:
            lifted = {
                "head": head,
                "scale": scale,
                "factor": 1.0 if scale == "none" else float(pre["output_scale"]),
            }
            for lr in cfg.learning_rates:
                ident_fp = fingerprint({**self.base, "pretrain": fp})
                self.runs.append(self._sgd(f"lifted:{head}:{scale}", lr, ident_fp, net, lifted))

    def _pretrain(
        self, head: str, settings: LiftedSettings, fp: str
    ) -> tuple[LiftedNetwork, dict[str, Any]]:
        cfg = self.config
        pre_id = {
            "kind": "study_pretrain",
            "dataset": cfg.dataset,
            "architecture": self.arch,
            "seed": cfg.seed,
            "init": head,
            "lr": None,
            "fingerprint": fp,
        }
        weights = self.out / "cache" / f"{self.arch}_{head}_seed{cfg.seed}_{fp}.cvxl"
        pre = self.store.get(**pre_id)
        net = runs.lifted_network(self.sizes, settings)
        if pre is None or not runs.load_cached_weights(weights, net):
            X_fit, y_fit, X_val, y_val = self.fit
            net, fields = runs.pretrain(
                self.sizes, cfg.seed, settings, (X_fit, y_fit), (X_val, y_val), lifted_rule=False
            )
            runs.cache_weights(weights, net)
            fields["validation_accuracy"] = fields.pop("test_accuracy")
            fields["validation_accuracy_per_sweep"] = fields.pop("test_accuracy_per_sweep")
            pre = {**pre_id, **fields}
            self.store.put(pre)
        self._tick()
        return net, pre

    def _sgd(
        self,
        init: str,
        lr: float,
        fp: str,
        net: LiftedNetwork | None,
        lifted: dict[str, Any],
    ) -> dict[str, Any]:
        """Return the record of one fine-tuning run (from the store, or computed now)."""
        cfg = self.config
        ident = {
            "kind": "study_sgd",
            "dataset": cfg.dataset,
            "architecture": self.arch,
            "seed": cfg.seed,
            "init": init,
            "lr": float(lr),
            "fingerprint": fp,
        }
        rec = self.store.get(**ident)
        if rec is None:
            if net is None:
                model = ct.initialize("xavier", self.sizes, seed=cfg.seed)
            else:
                model = ct.lifted_init(
                    net, output_scale=lifted["factor"], balance=lifted["scale"] == "balanced"
                )
            X_fit, y_fit, X_val, y_val = self.fit
            tr = ct.train(
                model, X_fit, y_fit, X_val, y_val,
                epochs=cfg.epochs, lr=lr, rho=cfg.rho, seed=cfg.seed,
            )  # fmt: skip
            head_scale = {"head": lifted.get("head"), "scale": lifted.get("scale")}
            rec = {**ident, **head_scale, **runs.train_fields(tr)}
            self.store.put(rec)
        self._tick()
        return rec

    def _tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    # ---------------------------------------------------------------- table
    def markdown(self) -> str:
        """Return the study table (``study.md``)."""
        base, cfg = self.base, self.config
        lines = [
            f"# Study: lifted initialisation on {cfg.dataset}, hidden {self.arch} (validation "
            "split only)",
            "",
            f"{base['rows']} training rows, {base['val_fraction']:.0%} held out for validation; "
            f"seed {base['seed']}; {base['epochs']} epochs of plain SGD, batch 100, ρ = "
            f"{base['rho']:g}; lifted models: relu_fenchel, {cfg.sweeps} sweeps. Each cell: "
            "validation accuracy at epoch 0 → epoch 1 → last epoch.",
            "",
            "| lifted model | validation accuracy | fitted scale | pretraining s |",
            "| --- | ---: | ---: | ---: |",
        ]
        for head, pre in self.lifted.items():
            lines.append(
                f"| {head} | {pre['validation_accuracy']:.4f} | {pre['output_scale']:.2f} | "
                f"{pre['seconds']:.1f} |"
            )
        return "\n".join(lines + self._md_runs() + self._md_time_to_accuracy()) + "\n"

    def _md_runs(self) -> list[str]:
        rates = self.config.learning_rates
        lines = [
            "",
            "| initialisation | " + " | ".join(f"η = {lr:g}" for lr in rates) + " |",
            "| --- | " + " | ".join("---:" for _ in rates) + " |",
        ]
        names: list[str] = []
        for r in self.runs:
            if r["init"] not in names:
                names.append(r["init"])
        for name in names:
            cells = []
            for lr in rates:
                match = [r for r in self.runs if r["init"] == name and r["lr"] == float(lr)]
                if not match:
                    cells.append("–")
                    continue
                acc = match[0]["test_accuracy"]
                cells.append(f"{acc[0]:.3f} → {acc[min(1, len(acc) - 1)]:.3f} → {acc[-1]:.3f}")
            label = "Xavier" if name == "xavier" else name.replace("lifted:", "lifted ")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        return lines

    def _md_time_to_accuracy(self) -> list[str]:
        xavier = {r["lr"]: r for r in self.runs if r["init"] == "xavier"}
        heads = [h for h, pre in self.lifted.items() if pre.get("validation_accuracy_per_sweep")]
        if not (xavier and heads):
            return []
        lines = [
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
                acc = np.asarray(self.lifted[h]["validation_accuracy_per_sweep"])
                secs = self.lifted[h]["seconds_cumulative_per_sweep"]
                k = first_reaching(acc, target)
                cells.append("never" if k is None else f"{sweeps_text(k)} ({secs[k]:.1f} s)")
            lines.append(
                f"| {lr:g} | {target:.3f} ({run['seconds'][-1]:.1f} s) | "
                + " | ".join(cells)
                + " |"
            )
        return lines

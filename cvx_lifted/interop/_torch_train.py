# SPDX-License-Identifier: Apache-2.0
"""Mini-batch training and scoring of PyTorch models (the SGD baselines of the paper's experiment).

Re-exported by :mod:`cvx_lifted.interop.torch`; PyTorch is imported when a function runs.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn


from cvx_lifted.interop._torch_base import OPTIMIZERS, PAPER_BATCH_SIZE, import_torch, linear_layers


# ------------------------------------------------------------------------------ training
@dataclass
class TrainResult:
    """What :func:`train` measured, epoch by epoch (index 0 is before training).

    Attributes
    ----------
    test_accuracy : list of float
        Test accuracy before training (index 0) and after each epoch.
    train_loss : list of float
        Index 0: mean cross-entropy on the whole training set before training; then the mean
        over the epoch's batches of the batch-averaged cross-entropy (penalty excluded).
    seconds : list of float
        Cumulative wall time of training (optimiser steps only, evaluation excluded) at the end
        of each epoch; 0 at index 0.
    eval_seconds : float
        Wall time spent evaluating (test accuracy, initial loss).
    diverged : bool
        Whether the loss became NaN or infinite; training stopped there, the remaining epochs
        repeat the last accuracy and time.
    config : dict
        ``epochs``, ``batch_size``, ``lr``, ``optimizer``, ``momentum``, ``rho``, ``seed``.
    """

    test_accuracy: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    eval_seconds: float = 0.0
    diverged: bool = False
    config: dict[str, Any] = field(default_factory=dict)

    def epochs_to_reach(self, target: float) -> int | None:
        """Return the first epoch whose test accuracy is at least ``target`` (``None``: never)."""
        for epoch, acc in enumerate(self.test_accuracy):
            if acc >= target:
                return epoch
        return None

    def seconds_to_reach(self, target: float) -> float | None:
        """Return the training wall time until the test accuracy first reaches ``target``."""
        epoch = self.epochs_to_reach(target)
        return None if epoch is None else self.seconds[epoch]

    def as_dict(self) -> dict[str, Any]:
        """Return the result as plain data (JSON-friendly)."""
        return asdict(self)


def accuracy(model: nn.Module, X: Any, y: Any, *, batch_size: int = 4096) -> float:
    """Return the classification accuracy of ``model`` (argmax of its outputs) on ``(X, y)``.

    Parameters
    ----------
    model : torch.nn.Module
    X : array_like or torch.Tensor, shape (m, n_inputs)
    y : array_like or torch.Tensor of int, shape (m,)
    batch_size : int, default=4096
        Rows per forward pass.

    Returns
    -------
    float
    """
    torch = import_torch()
    Xt, yt = _as_tensors(model, X, y)
    correct = 0
    with torch.no_grad():
        for start in range(0, Xt.shape[0], batch_size):
            out = model(Xt[start : start + batch_size])
            correct += int((out.argmax(dim=1) == yt[start : start + batch_size]).sum())
    return correct / max(1, Xt.shape[0])


def _model_dtype(model: nn.Module) -> torch.dtype:
    torch = import_torch()
    for p in model.parameters():
        return p.dtype
    return torch.float32


def _as_tensors(model: nn.Module, X: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    torch = import_torch()
    dtype = _model_dtype(model)
    Xt = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X, dtype=dtype)
    yt = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    yt = yt.to(torch.int64)
    if Xt.ndim != 2 or yt.ndim != 1 or Xt.shape[0] != yt.shape[0]:
        raise ValueError(
            f"X must be 2-D and y 1-D with one label per row, got {tuple(Xt.shape)} and "
            f"{tuple(yt.shape)}."
        )
    return Xt, yt


def _mean_loss(model: nn.Module, Xt: Any, yt: Any, batch_size: int = 4096) -> float:
    torch = import_torch()
    total = 0.0
    with torch.no_grad():
        for start in range(0, Xt.shape[0], batch_size):
            out = model(Xt[start : start + batch_size])
            total += float(
                torch.nn.functional.cross_entropy(
                    out, yt[start : start + batch_size], reduction="sum"
                )
            )
    return total / max(1, Xt.shape[0])


def train(
    model: nn.Module,
    X: Any,
    y: Any,
    X_test: Any,
    y_test: Any,
    *,
    epochs: int = 17,
    batch_size: int = PAPER_BATCH_SIZE,
    lr: float = 1e-3,
    optimizer: str = "sgd",
    momentum: float = 0.0,
    rho: float = 1e-3,
    seed: int | None = 0,
    progress: bool = False,
) -> TrainResult:
    r"""Train ``model`` by mini-batch SGD or Adam on a softmax cross-entropy; record test accuracy.

    Each step minimises :math:`\frac1{|B|}\sum_{i\in B}\mathrm{CE}_i + \rho\sum_l\|W_l\|_F^2`
    over the batch :math:`B` (the paper's penalty on every ``nn.Linear`` weight, biases not
    penalised; see the module docstring for the learning-rate translation). Batches are a fresh
    permutation of the rows each epoch, drawn from a generator seeded by ``seed``: two models
    trained with the same seed see the same batches. The model is trained in place.

    Parameters
    ----------
    model : torch.nn.Module
        Outputs logits (no softmax at the end).
    X, y : array_like
        Training inputs ``(m, n)`` and integer labels ``(m,)``.
    X_test, y_test : array_like
        Evaluation set (accuracy recorded before training and after each epoch).
    epochs : int, default=17
        Passes over the training rows (the paper's 17).
    batch_size : int, default=100
        Rows per step (the paper's 100); the last batch of an epoch may be smaller.
    lr : float, default=1e-3
        Constant learning rate, for the batch-*averaged* loss.
    optimizer : {"sgd", "adam"}, default="sgd"
        Plain mini-batch gradient descent (with ``momentum``), or Adam (default betas).
    momentum : float, default=0.0
        SGD momentum (0: the paper's plain mini-batch gradient descent).
    rho : float, default=1e-3
        :math:`\rho` of the penalty :math:`\rho\|W\|_F^2` (the paper's 1e-3).
    seed : int, optional
        Seed of the batch order.
    progress : bool, default=False
        Show a tqdm bar over epochs.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        For an unknown optimiser or non-positive sizes and rates.
    """
    torch = import_torch()
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
    for name, count in (("epochs", epochs), ("batch_size", batch_size)):
        if int(count) != count or count < (0 if name == "epochs" else 1):
            raise ValueError(f"{name} must be a positive integer, got {count!r}.")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}.")
    if not (math.isfinite(rho) and rho >= 0):
        raise ValueError(f"rho must be a non-negative number, got {rho!r}.")
    if not (math.isfinite(momentum) and 0 <= momentum < 1):
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}.")
    Xt, yt = _as_tensors(model, X, y)
    Xv, yv = _as_tensors(model, X_test, y_test)
    weights = [lin.weight for lin in linear_layers(model)]
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    config = {
        "epochs": int(epochs),
        "batch_size": int(batch_size),
        "lr": float(lr),
        "optimizer": optimizer,
        "momentum": float(momentum),
        "rho": float(rho),
        "seed": seed,
    }
    result = TrainResult(config=config)
    t0 = time.perf_counter()
    result.test_accuracy.append(accuracy(model, Xv, yv))
    result.train_loss.append(_mean_loss(model, Xt, yt))
    result.seconds.append(0.0)
    result.eval_seconds += time.perf_counter() - t0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(epochs), desc=f"{optimizer} lr={lr:g}", unit="epoch", leave=False)
    m = Xt.shape[0]
    train_time = 0.0
    try:
        for _ in range(int(epochs)):
            if result.diverged:
                result.test_accuracy.append(result.test_accuracy[-1])
                result.train_loss.append(float("nan"))
                result.seconds.append(train_time)
                continue
            model.train()
            t_epoch = time.perf_counter()
            order = torch.randperm(m, generator=generator)
            total, n_batches = 0.0, 0
            for rows in order.split(int(batch_size)):
                opt.zero_grad(set_to_none=True)
                ce = torch.nn.functional.cross_entropy(model(Xt[rows]), yt[rows])
                loss = ce
                if rho > 0:
                    loss = ce + rho * sum((W * W).sum() for W in weights)
                value = float(ce.detach())
                if not math.isfinite(value) or not math.isfinite(float(loss.detach())):
                    result.diverged = True
                    break
                loss.backward()
                opt.step()
                total += value
                n_batches += 1
            train_time += time.perf_counter() - t_epoch
            model.eval()
            t_eval = time.perf_counter()
            result.test_accuracy.append(accuracy(model, Xv, yv))
            result.eval_seconds += time.perf_counter() - t_eval
            result.train_loss.append(total / n_batches if n_batches else float("nan"))
            result.seconds.append(train_time)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(acc=f"{result.test_accuracy[-1]:.4f}")
    finally:
        if bar is not None:
            bar.close()
    model.eval()
    return result

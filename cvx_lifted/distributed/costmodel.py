# SPDX-License-Identifier: Apache-2.0
r"""The cost of one data-parallel sweep: bytes per round, rounds per sweep, compute per worker.

A sweep on :math:`W` workers exchanges only what the weight steps need (see ``docs/distributed.md``
for the derivation and its check against measurements). The client sends *constants* (weights,
search directions, steps along a line) and receives *sums* (Grams, moments, per-column sums); every
worker receives each constant once and sends one partial sum per reduction, so a sweep whose
client-side payload is :math:`P` bytes moves :math:`W P` bytes over the network, and its critical
path carries each sum :math:`\lceil\log_2 W\rceil` times (the tree).

The payload of layer :math:`l` (input width :math:`p`, output width :math:`q`, ``b`` bytes per
entry of the products: 4 for mixed precision, else 8), per sweep:

* the Gram of a hidden input (:math:`l \ge 1`): :math:`8p(p + 1)`;
* an iterative weight step (``relu_fenchel``, Fenchel--Young) of :math:`k` iterations:
  :math:`k\,(b + 8)(p + 1)q` (a direction out, a gradient back) plus :math:`32\,t\,k\,q` for
  :math:`t` trial steps per line search;
* a softmax weight step of :math:`e` evaluations: :math:`(e + 1)\,16\,(p + 1)q`;
* a ridge weight step: :math:`8(p + 1)q`;
* the state step of hidden layer :math:`l`: :math:`8(p_{l+1} + 1)\,q_{l+1}` (the next layer's
  weights) plus :math:`8(p + 1)q` when this layer's image is not kept;
* the objective: :math:`8\sum_l (p_l + 1)q_l` (the network).

The rounds (reductions, each a wait of the client for the workers) of a sweep are, for an
iterative weight step of :math:`k` iterations, :math:`2 + k + tk` (the objective and a bound at the
start, a gradient per iteration, a reduction per line-search trial), one per softmax evaluation,
one per Gram, one per ridge step, and one for the objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cvx_lifted import paths
from cvx_lifted.defaults import auto_weight_iterations

if TYPE_CHECKING:
    from cvx_lifted.network import LiftedNetwork

__all__ = ["SweepCost", "project", "sweep_cost"]


@dataclass(frozen=True)
class SweepCost:
    """What one sweep exchanges and computes.

    Attributes
    ----------
    payload : dict of str to float
        Bytes the client sends and receives per sweep, by term.
    rounds : float
        Reductions per sweep.
    flops : float
        Floating-point operations of the products over the rows (all workers together).
    """

    payload: dict[str, float]
    rounds: float
    flops: float

    @property
    def payload_bytes(self) -> float:
        """The client's payload per sweep (bytes)."""
        return float(sum(self.payload.values()))

    def bytes_moved(self, workers: int) -> float:
        """Bytes over the network per sweep on ``workers`` workers: ``workers * payload``."""
        return workers * self.payload_bytes


def _weight_kinds(network: LiftedNetwork) -> list[str]:
    kinds = []
    for layer in range(network.n_layers):
        found = paths.WEIGHT.find(network.divergence_of(layer))
        kinds.append(found[0] if found is not None else "compiled")
    return kinds


def sweep_cost(
    network: LiftedNetwork,
    rows: int,
    *,
    iterations: int | None = None,
    softmax_evaluations: int = 6,
    line_trials: float = 2.0,
    product_bytes: int | None = None,
) -> SweepCost:
    """Return the model's cost of one sweep of ``network`` on ``rows`` rows.

    Parameters
    ----------
    network : LiftedNetwork
        The network (its layer sizes and weight steps).
    rows : int
        Rows of the data.
    iterations : int, optional
        Iterations of the iterative weight steps (default: those of
        :class:`~cvx_lifted.bcd.BCDSolver`'s ``weight_max_iter="auto"`` on ``rows`` rows,
        :func:`~cvx_lifted.defaults.auto_weight_iterations`).
    softmax_evaluations : int, default=6
        Function evaluations of a softmax weight step.
    line_trials : float, default=2.0
        Trial steps per line search.
    product_bytes : int, optional
        Bytes per entry of the products: 4 when they run in float32 (float64 data of at least a
        million entries, or float32 data), else 8. Inferred from ``rows`` and the network when
        omitted.

    Returns
    -------
    SweepCost
    """
    sizes = list(network.layer_sizes)
    k = auto_weight_iterations(rows) if iterations is None else int(iterations)
    if product_bytes is None:
        mixed = network.dtype.itemsize == 4 or rows * sizes[0] >= 1_000_000
        product_bytes = 4 if mixed else 8
    payload: dict[str, float] = {}
    rounds = 1.0  # the objective
    flops = 0.0
    kinds = _weight_kinds(network)
    for layer, kind in enumerate(kinds):
        p, q = sizes[layer], sizes[layer + 1]
        if layer >= 1:
            payload[f"gram {layer}"] = 8.0 * p * (p + 1)
            rounds += 1
            flops += rows * p * p
        if kind in ("relu_fenchel", "fenchel_young"):
            payload[f"weights {layer}"] = k * (product_bytes + 8.0) * (p + 1) * q
            payload[f"line search {layer}"] = 32.0 * line_trials * k * q
            rounds += 2 + k + k * line_trials  # start: objective, bound; per iteration
            flops += 2 * k * 2.0 * rows * (p + 1) * q
        elif kind == "softmax":
            payload[f"weights {layer}"] = (softmax_evaluations + 1) * 16.0 * (p + 1) * q
            rounds += softmax_evaluations + 1
            flops += softmax_evaluations * 2 * 2.0 * rows * (p + 1) * q
        else:  # ridge
            payload[f"weights {layer}"] = 8.0 * (p + 1) * q
            rounds += 1
            flops += 2.0 * rows * p * q
    for layer in range(1, network.n_hidden + 1):
        p, q = sizes[layer], sizes[layer + 1]
        image = 0.0 if layer == 1 else 8.0 * (sizes[layer - 1] + 1) * p
        payload[f"states {layer}"] = 8.0 * (p + 1) * q + image
        flops += 2.0 * rows * (p + 1) * q
    payload["objective"] = 8.0 * sum((sizes[i] + 1) * sizes[i + 1] for i in range(network.n_layers))
    # the objective's images beyond the first layer (the first is the one its weight step kept)
    flops += sum(2.0 * rows * (sizes[i] + 1) * sizes[i + 1] for i in range(1, network.n_layers))
    return SweepCost(payload, rounds, flops)


def project(
    cost: SweepCost,
    seconds_one_worker: float,
    workers: list[int],
    *,
    latency: float,
    bandwidth: float,
) -> list[dict[str, Any]]:
    """Project the sweep time to more workers: compute shrinks, the rounds do not.

    ``t(W) = seconds_one_worker / W + rounds * latency * ceil(log2 W)`` (each reduction waits for
    a tree of depth ``log2 W``) ``+ payload * ceil(log2 W) / bandwidth`` (each sum and constant
    crosses that many links on the critical path).

    Parameters
    ----------
    cost : SweepCost
        From :func:`sweep_cost`.
    seconds_one_worker : float
        Measured compute time of a sweep on one worker.
    workers : list of int
        Worker counts to project to.
    latency : float
        Seconds per message hop (scheduler and worker).
    bandwidth : float
        Bytes per second of one link.

    Returns
    -------
    list of dict
        Per worker count: ``workers``, ``compute``, ``communication`` and ``sweep`` seconds, and
        ``bytes`` moved.
    """
    rows = []
    for w in workers:
        hops = max(1, math.ceil(math.log2(w))) if w > 1 else 1
        compute = seconds_one_worker / w
        comm = cost.rounds * latency * hops + cost.payload_bytes * hops / bandwidth
        rows.append(
            {
                "workers": w,
                "compute": compute,
                "communication": comm,
                "sweep": compute + comm,
                "bytes": cost.bytes_moved(w),
            }
        )
    return rows

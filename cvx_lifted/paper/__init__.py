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

Modules: :mod:`~cvx_lifted.paper.config` (:class:`ReproduceConfig`, :class:`StudyConfig`,
constants and parsers), :mod:`~cvx_lifted.paper.experiment` (:func:`reproduce`),
:mod:`~cvx_lifted.paper.study` (:func:`study_lifted_init`), :mod:`~cvx_lifted.paper.runs` (data,
lifted pretraining, threads), :mod:`~cvx_lifted.paper.store` (the run store, output folders),
:mod:`~cvx_lifted.paper.results` (:class:`ReproduceResult`, Table 1's numbers) and
:mod:`~cvx_lifted.paper.report` (the output files).

Command line: ``cvx-lifted reproduce --dataset mnist-10k [--quick] [--out DIR] ...``, which
parses its options into a :class:`ReproduceConfig` (or, with ``--study``, a
:class:`StudyConfig`).

Examples
--------
>>> from cvx_lifted.paper import ReproduceConfig, reproduce
>>> config = ReproduceConfig(dataset="mnist-10k", quick=True)  # doctest: +SKIP
>>> result = reproduce(config)  # doctest: +SKIP
>>> result = reproduce(dataset="mnist-10k", quick=True)  # the same run  # doctest: +SKIP
"""

from __future__ import annotations

from cvx_lifted.paper.config import (
    ARCHITECTURES,
    CLI_DATASETS,
    DEFAULT_LAM,
    DEFAULT_LEARNING_RATES,
    FIGURE_ARCHITECTURES,
    HEADS,
    INIT_LABELS,
    INITS,
    LR_GRID,
    OPTIMIZERS,
    OUTPUT_SCALES,
    PAPER_TABLE1,
    QUICK,
    LearningRate,
    ReproduceConfig,
    StudyConfig,
    parse_architecture,
    parse_lam,
    parse_learning_rate,
    parse_output_scale,
)
from cvx_lifted.paper.experiment import reproduce
from cvx_lifted.paper.results import ReproduceResult
from cvx_lifted.paper.store import RunStore, output_folder
from cvx_lifted.paper.study import study_lifted_init

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
    "ReproduceResult",
    "RunStore",
    "StudyConfig",
    "output_folder",
    "parse_architecture",
    "parse_lam",
    "parse_learning_rate",
    "parse_output_scale",
    "reproduce",
    "study_lifted_init",
]

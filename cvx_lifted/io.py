# SPDX-License-Identifier: Apache-2.0
"""Model files and tabular data files (one import for both).

Model files live in :mod:`cvx_lifted.modelfile` (:func:`save_network`, :func:`read_metadata`,
...) and :mod:`cvx_lifted.network` (:func:`load_model`, :func:`load_network`), CSV/NPZ tables
in :mod:`cvx_lifted.tables`
(:func:`read_table`, :func:`infer_task`, :func:`train_validation_split`); this module re-exports
both, so ``from cvx_lifted.io import load_model, read_table`` keeps working.
"""

from __future__ import annotations

from cvx_lifted.modelfile import (
    DEFAULT_SUFFIX,
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_LAYER_WIDTH,
    MAX_LAYERS,
    MAX_PARAMETERS,
    metadata_digest,
    model_bytes,
    read_metadata,
    save_network,
)
from cvx_lifted.network import SavedModel, load_model, load_network
from cvx_lifted.tables import (
    MAX_EXACT_INTEGER,
    Table,
    infer_task,
    read_table,
    train_validation_split,
)

__all__ = [
    "DEFAULT_SUFFIX",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_EXACT_INTEGER",
    "MAX_LAYERS",
    "MAX_LAYER_WIDTH",
    "MAX_PARAMETERS",
    "SavedModel",
    "Table",
    "infer_task",
    "load_model",
    "load_network",
    "metadata_digest",
    "model_bytes",
    "read_metadata",
    "read_table",
    "save_network",
    "train_validation_split",
]

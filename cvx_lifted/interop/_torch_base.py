# SPDX-License-Identifier: Apache-2.0
"""What both halves of :mod:`cvx_lifted.interop.torch` share: importing PyTorch and its layers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

__all__ = ["INSTALL_HINT", "OPTIMIZERS", "PAPER_BATCH_SIZE", "import_torch", "linear_layers"]

#: How to install PyTorch, quoted by the errors raised when it is missing.
INSTALL_HINT = (
    "install PyTorch first with `pip install torch==2.13.0` (the CPU wheel), then `pip install "
    '"cvx-lifted[torch]"`'
)
#: Optimisers of :func:`train`.
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")
#: Batch size of the paper's experiments.
PAPER_BATCH_SIZE = 100


def import_torch() -> Any:
    """Import and return :mod:`torch`, or raise an ``ImportError`` saying how to install it.

    Returns
    -------
    module
        The ``torch`` module.

    Raises
    ------
    ImportError
        When PyTorch is not installed.
    """
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError(f"cvx_lifted.interop.torch needs PyTorch: {INSTALL_HINT}.") from exc
    return torch


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """Return the ``nn.Linear`` modules of a model, in order."""
    torch = import_torch()
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear)]

# SPDX-License-Identifier: Apache-2.0
"""Bridges from lifted networks to other frameworks (optional dependencies).

:mod:`cvx_lifted.interop.torch`
    Export a trained :class:`~cvx_lifted.LiftedNetwork` to ``torch.nn``
    (:func:`~cvx_lifted.interop.torch.to_torch`), the initialisations compared in the paper's
    §7 (normal, Xavier, variance scaling, lifted) and a small mini-batch trainer. Needs PyTorch:
    ``pip install torch==2.13.0`` then ``pip install "cvx-lifted[torch]"``.

Importing this package never imports a framework; each submodule imports its framework on
first use and says how to install it when it is missing.
"""

__all__: list[str] = []

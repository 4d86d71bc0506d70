# SPDX-License-Identifier: Apache-2.0
r"""cvx_lifted: lifted neural networks whose activations are argmins of convex divergences.

An activation is declared as a convex program, :math:`\phi(u) = \operatorname{argmin}_z D(u, z)`,
with its closed form alongside; a lifted network keeps its hidden states as variables and trains
by block-coordinate descent, each block a small convex problem (Askari et al., 2018).

Main entry points: :data:`ACTIVATIONS`, :func:`get_activation`, :func:`custom_activation`,
:func:`verify`, :class:`CompiledProblem`, :class:`LiftedNetwork`, :class:`LiftedMLPClassifier`,
:class:`LiftedMLPRegressor`, :func:`load`. Every default setting lives in
:mod:`cvx_lifted.defaults`; activations of other packages are found through the
``cvx_lifted.activations`` entry points (:mod:`cvx_lifted.plugins`).
"""

from cvx_lifted._version import __version__
from cvx_lifted.activations import (
    ACTIVATIONS,
    Activation,
    BoxActivation,
    FenchelYoungActivation,
    ProjectionActivation,
    get_activation,
    register_activation,
)
from cvx_lifted.activations.custom import FenchelYoungForm, custom_activation
from cvx_lifted.argmin import CompiledArgmin
from cvx_lifted.bcd import BCDSolver
from cvx_lifted.compile import CompiledProblem
from cvx_lifted.exceptions import (
    BlockTooLargeError,
    CvxLiftedError,
    ModelFileError,
    NonConvexError,
    NotDPPError,
    NotRepresentableError,
    SolverFailedError,
)
from cvx_lifted.history import BCDHistory, BCDResult
from cvx_lifted.losses import OUTPUTS, get_output
from cvx_lifted.minibatch import MinibatchBCDSolver
from cvx_lifted.network import LiftedNetwork, load_network
from cvx_lifted.verify import VerificationReport, verify, verify_all

_LAZY = {
    "LiftedMLPClassifier": "cvx_lifted.estimator",
    "LiftedMLPRegressor": "cvx_lifted.estimator",
}


def __getattr__(name: str) -> object:
    """Import the estimators on first use (scikit-learn is slow to import)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cvx_lifted' has no attribute {name!r}")


def load(path: str) -> LiftedNetwork:
    """Load a network saved with :meth:`LiftedNetwork.save` (see :mod:`cvx_lifted.io`).

    Parameters
    ----------
    path : str or os.PathLike
        Model file.

    Returns
    -------
    LiftedNetwork

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ModelFileError
        For any other problem with the file (see :mod:`cvx_lifted.modelfile`).
    """
    return load_network(path)


__all__ = [
    "ACTIVATIONS",
    "BCDHistory",
    "BCDResult",
    "BCDSolver",
    "LiftedMLPClassifier",
    "LiftedMLPRegressor",
    "LiftedNetwork",
    "MinibatchBCDSolver",
    "OUTPUTS",
    "Activation",
    "BlockTooLargeError",
    "BoxActivation",
    "CompiledArgmin",
    "CompiledProblem",
    "CvxLiftedError",
    "FenchelYoungActivation",
    "FenchelYoungForm",
    "ModelFileError",
    "NonConvexError",
    "NotDPPError",
    "NotRepresentableError",
    "ProjectionActivation",
    "SolverFailedError",
    "VerificationReport",
    "__version__",
    "custom_activation",
    "get_activation",
    "get_output",
    "load",
    "register_activation",
    "verify",
    "verify_all",
]

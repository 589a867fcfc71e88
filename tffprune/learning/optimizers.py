"""Client and server optimizers by name, as ``tff.learning.optimizers``.

The round's local training and its server step both take a
``tff.learning.optimizers.Optimizer`` (TFF's builders take the same objects).
These functions build the ones the command line names:

* ``sgd``: ``w = w - learning_rate * g``;
* ``sgdm``: ``a = momentum * a + g; w = w - learning_rate * a``;
* ``adam``: Kingma & Ba (2015), TFF's ``build_adam`` (beta 0.9 / 0.999);
* ``yogi`` (server only): Zaheer et al. (2018), TFF's ``build_yogi``.

On the server, ``g`` is the aggregated pseudo-gradient (the server's weights
minus the clients' mean): ``sgd`` at learning rate 1 is FedAvg, ``sgdm``
FedAvgM, ``adam`` and ``yogi`` FedAdam and FedYogi (Reddi et al., 2021,
"Adaptive Federated Optimization").
"""

from __future__ import annotations

import tensorflow_federated as tff
from tensorflow_federated.python.learning.optimizers import adam, sgdm

from tffprune.config import SERVER_OPTIMIZERS
from tffprune.fl.optimizer_steps import Adam, MomentumSGD


def build_optimizer(
    name: str,
    learning_rate: float,
    momentum: float = 0.0,
    *,
    epsilon: float | None = None,
) -> tff.learning.optimizers.Optimizer:
    """The optimizer ``name`` at ``learning_rate``.

    Args:
        name: One of ``tffprune.config.SERVER_OPTIMIZERS`` (the clients'
            are a subset).
        learning_rate: Step size (> 0, finite).
        momentum: For ``sgdm``, in [0, 1) (``sgdm`` with 0 is ``sgd``); the
            other optimizers ignore it.
        epsilon: For ``adam`` and ``yogi``, the constant added to the
            denominator (Reddi et al.'s tau); None: TFF's default (1e-7 for
            ``adam``, 1e-3 for ``yogi``).

    Returns:
        A ``tff.learning.optimizers.Optimizer``.

    Raises:
        ValueError: On an unknown name, a learning rate that is not positive
            and finite, or a momentum outside [0, 1).
    """
    if name not in SERVER_OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer {name!r}; expected one of "
            f"{', '.join(SERVER_OPTIMIZERS)}"
        )
    if not 0 < learning_rate < float("inf"):
        raise ValueError(f"learning rate must be > 0 and finite, got {learning_rate}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if name == "sgd" or (name == "sgdm" and momentum == 0):
        return tff.learning.optimizers.build_sgdm(learning_rate)
    if name == "sgdm":
        return tff.learning.optimizers.build_sgdm(learning_rate, momentum=momentum)
    adaptive = {} if epsilon is None else {"epsilon": epsilon}
    if name == "adam":
        return tff.learning.optimizers.build_adam(learning_rate, **adaptive)
    return tff.learning.optimizers.build_yogi(learning_rate, **adaptive)


def in_place(optimizer: tff.learning.optimizers.Optimizer):
    """The client optimizer as the training loop runs it.

    TFF's SGD, with or without momentum, and TFF's Adam, at fixed
    hyperparameters, become a `tffprune.fl.optimizer_steps.MomentumSGD` or
    `~tffprune.fl.optimizer_steps.Adam`: the same rule run by TensorFlow's
    fused in-place kernels. Any other optimizer is returned as it is.
    """
    if isinstance(optimizer, sgdm._SGD):  # noqa: SLF001
        rule, keys = MomentumSGD, ("learning_rate", "momentum")
    elif isinstance(optimizer, adam._Adam):  # noqa: SLF001
        rule, keys = Adam, ("learning_rate", "beta_1", "beta_2", "epsilon")
    else:
        return optimizer
    state = optimizer.initialize(())
    hparams = [state.get(key, 0.0) for key in keys]
    if not all(isinstance(value, int | float) for value in hparams):
        return optimizer
    return rule(*(float(value) for value in hparams), optimizer)

"""Sub-FedAvg aggregation: the NumPy reference (no TensorFlow, no TFF).

Sub-FedAvg (Vahidian, Morafah & Lin, 2021) averages every parameter only over
the clients whose subnetwork kept it. With client ``k``'s values ``x_k``, mask
``m_k`` (1 kept, 0 pruned) and weight ``n_k`` (1 for Sub-FedAvg's unweighted
mean, the example count for FedAvg's weighted mean), each entry becomes::

            sum_k n_k m_k x_k
    x  =  ---------------------     where  sum_k n_k m_k > 0,
              sum_k n_k m_k

    x  =  x_server (unchanged)      where no sampled client kept it.

With all-ones masks this is exactly FedAvg's weighted mean of the client
models, so plain FedAvg is the special case, and `fedavg` is defined that way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _check_structure(
    server_weights: Sequence[np.ndarray],
    client_weights: Sequence[Sequence[np.ndarray]],
    client_masks: Sequence[Sequence[np.ndarray]] | None,
) -> None:
    if not client_weights:
        raise ValueError("no client updates to aggregate")
    for k, weights in enumerate(client_weights):
        if len(weights) != len(server_weights):
            raise ValueError(
                f"client {k} sent {len(weights)} tensors, the model has "
                f"{len(server_weights)}"
            )
        for i, (value, server) in enumerate(zip(weights, server_weights, strict=True)):
            if np.shape(value) != np.shape(server):
                raise ValueError(
                    f"client {k} tensor {i} has shape {np.shape(value)}, expected "
                    f"{np.shape(server)}"
                )
    if client_masks is not None and len(client_masks) != len(client_weights):
        raise ValueError(
            f"got {len(client_masks)} mask sets for {len(client_weights)} clients"
        )


def sub_fedavg(
    server_weights: Sequence[np.ndarray],
    client_weights: Sequence[Sequence[np.ndarray]],
    client_masks: Sequence[Sequence[np.ndarray]] | None = None,
    client_weighting: Sequence[float] | None = None,
) -> list[np.ndarray]:
    """Averages each parameter over the clients whose mask kept it.

    Args:
        server_weights: Current server tensors; kept where no client kept an
            entry.
        client_weights: One list of tensors per client (pruned entries may hold
            anything; they are ignored).
        client_masks: One list of boolean masks per client; ``None`` means all
            kept (plain FedAvg).
        client_weighting: One non-negative weight per client (``None``: 1 each,
            Sub-FedAvg's unweighted mean).

    Returns:
        The new server tensors, in the server tensors' dtypes.

    Raises:
        ValueError: If there are no clients, or shapes or counts do not match.
    """
    _check_structure(server_weights, client_weights, client_masks)
    num_clients = len(client_weights)
    weighting = (
        np.ones(num_clients)
        if client_weighting is None
        else np.asarray(client_weighting, np.float64)
    )
    if weighting.shape != (num_clients,) or np.any(weighting < 0):
        raise ValueError(
            f"client_weighting must be {num_clients} non-negative numbers, got "
            f"{client_weighting}"
        )
    result = []
    for i, server in enumerate(server_weights):
        server = np.asarray(server)
        total = np.zeros(server.shape, np.float64)
        coverage = np.zeros(server.shape, np.float64)
        for k in range(num_clients):
            kept = (
                np.ones(server.shape)
                if client_masks is None
                else np.asarray(client_masks[k][i], np.float64)
            )
            contribution = weighting[k] * kept
            total += contribution * np.where(kept > 0, client_weights[k][i], 0.0)
            coverage += contribution
        averaged = np.divide(
            total, coverage, out=np.zeros_like(total), where=coverage > 0
        )
        result.append(np.where(coverage > 0, averaged, server).astype(server.dtype))
    return result


def fedavg(
    server_weights: Sequence[np.ndarray],
    client_weights: Sequence[Sequence[np.ndarray]],
    client_weighting: Sequence[float] | None = None,
) -> list[np.ndarray]:
    """FedAvg: the weighted mean of the client tensors (Sub-FedAvg, all kept)."""
    return sub_fedavg(server_weights, client_weights, None, client_weighting)

"""What a round's messages cost: our bytes beside the baselines and the bound.

For the uploads the server aggregated in a round (each given by its masks and
exact encoded size, `tffprune.compression.wire.encoded_size`):

* ``upload_bytes``: what our codec sends;
* ``upload_bytes_dense``: dense float32 (FedAvg without compression);
* ``upload_bytes_csr``: SciPy CSR, Jeurkar et al.'s format (`baselines`);
* ``upload_bytes_tff_8bit``: TFF's 8-bit ``compression_aggregator``;
* ``upload_bound_ratio``: mean over clients of our bits over the information
  bound ``n H(d) + d n b``.

For each client's download (`download_costs`, given the entries the server
decided to send it, `tffprune.fl.algorithm.FederatedAlgorithm.download_masks`):
its exact size, its SciPy CSR size (``download_bytes_csr``) and its
information bound.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tffprune.compression import baselines, wire


def upload_costs(
    masks: Sequence[Sequence[np.ndarray]],
    sizes: Sequence[int],
    shapes: Sequence[tuple[int, ...]],
    value_format: str,
    held: Sequence[Sequence[np.ndarray | None] | None] | None = None,
) -> dict[str, float]:
    """The upload columns of a round's metrics row.

    Args:
        masks: Per aggregated client, one mask per weight it uploaded.
        sizes: Per aggregated client, its encoded size in bytes.
        shapes: Shapes of all the model's weights.
        value_format: The values' format (``float32``, ``float16``, ``int8``).
        held: Per aggregated client, the masks the server already held for
            it (the bound then counts only their change), or None.

    Returns:
        The five ``upload_*`` figures (the bound ratio is NaN without
        clients).
    """
    ratios = []
    held = [None] * len(sizes) if held is None else held
    for client_masks, size, previous in zip(masks, sizes, held, strict=True):
        bound = baselines.information_bound_bits(client_masks, value_format, previous)
        ratios.append(8 * size / bound if bound else float("nan"))
    clients = len(sizes)
    return {
        "upload_bytes": int(sum(sizes)),
        "upload_bytes_dense": 4 * sum(int(np.prod(s)) for s in shapes) * clients,
        "upload_bytes_csr": sum(baselines.csr_bytes(m) for m in masks),
        "upload_bytes_tff_8bit": baselines.tff_8bit_bytes(shapes) * clients,
        "upload_bound_ratio": float(np.mean(ratios)) if ratios else float("nan"),
    }


def download_costs(
    masks: Sequence[np.ndarray],
    value_format: str,
    positions: str = "auto",
    held: Sequence[np.ndarray | None] | None = None,
) -> dict[str, float]:
    """What one client's download costs, three ways.

    Args:
        masks: One mask per weight (all): the entries the server sends.
        value_format: The download's value format.
        positions: ``auto``, ``bitmap`` or ``gaps`` (`wire.encoded_size`).
        held: Per weight, the mask the client already holds (its positions
            then cost only what changed), or None.

    Returns:
        ``download_bytes`` (exact, `wire.encoded_size`), ``download_bytes_csr``
        (the same message as SciPy CSR) and ``download_bound_bits`` (its
        information bound, `baselines.information_bound_bits`).
    """
    return {
        "download_bytes": wire.encoded_size(masks, value_format, positions, held=held),
        "download_bytes_csr": baselines.csr_bytes(masks),
        "download_bound_bits": baselines.information_bound_bits(
            masks, value_format, held
        ),
    }

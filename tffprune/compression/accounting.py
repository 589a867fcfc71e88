"""What a round's messages cost: our bytes beside the baselines and the bound.

For the uploads the server aggregated in a round (each given by its masks and
exact encoded size, `tffprune.compression.wire.encoded_size`):

* ``upload_bytes``: what our codec sends;
* ``upload_bytes_dense``: dense float32 (FedAvg without compression);
* ``upload_bytes_csr``: SciPy CSR, Jeurkar et al.'s format (`baselines`);
* ``upload_bytes_tff_8bit``: TFF's 8-bit ``compression_aggregator``;
* ``upload_bound_ratio``: mean over clients of our bits over the information
  bound ``n H(d) + d n b``.

The download is counted per client where it is decided
(`tffprune.fl.algorithm.FederatedAlgorithm.download_costs`), with its SciPy
CSR size beside it (``download_bytes_csr``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tffprune.compression import baselines


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

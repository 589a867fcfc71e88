"""What a round's messages cost: our bytes beside the baselines and the bound.

For the uploads the server aggregated in a round (each given by its masks'
facts, `tffprune.compression.mask_facts`, and its exact encoded size,
`tffprune.compression.wire.encoded_size_of`):

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

FedPM's messages (`tffprune.fl.fedpm`), each coded for real, decoded and
compared with what was sent, its size and bound returned:

* down (`probability_download`): the probabilities at their bits, a tag byte
  then either each value at its bits (float32, or packed bin indices) or,
  when smaller, the table of distinct values and their indices range-coded
  (`dictionary`; with the posterior reset every round there are at most
  K + 1 values); bound ``n H(values)``;
* down to a returning client (`returning_download`): when smaller, the new
  values coded given the ones it holds (`dictionary.encode_given`); bound
  ``n H(new | held)``;
* up (`mask_upload`): a sampled mask range-coded under the probabilities the
  client downloaded (`bernoulli`); bound ``sum -log2 P(m_i)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tffprune.compression import baselines, bernoulli, dictionary, wire
from tffprune.compression.mask_facts import MaskFacts


def upload_costs(
    facts: Sequence[Sequence[MaskFacts]],
    sizes: Sequence[int],
    shapes: Sequence[tuple[int, ...]],
    value_format: str,
    bounds: Sequence[float] | None = None,
) -> dict[str, float]:
    """The upload columns of a round's metrics row.

    Args:
        facts: Per aggregated client, its masks' facts, one per weight it
            uploaded, flips against the masks the server already held
            (`tffprune.compression.mask_facts`; the bound then counts only
            their change).
        sizes: Per aggregated client, its encoded size in bytes.
        shapes: Shapes of all the model's weights.
        value_format: The values' format (``float32``, ``float16``, ``int8``).
        bounds: Per aggregated client, its upload's information bound in
            bits, where the message is not values at masks (FedPM's); by
            default `baselines.information_bound_bits_of` the facts.

    Returns:
        The five ``upload_*`` figures (the bound ratio is NaN without
        clients).
    """
    if bounds is None:
        bounds = [
            baselines.information_bound_bits_of(client, value_format)
            for client in facts
        ]
    ratios = [
        8 * size / bound if bound else float("nan")
        for size, bound in zip(sizes, bounds, strict=True)
    ]
    clients = len(sizes)
    return {
        "upload_bytes": int(sum(sizes)),
        "upload_bytes_dense": 4 * sum(int(np.prod(s)) for s in shapes) * clients,
        "upload_bytes_csr": sum(baselines.csr_bytes_of(f) for f in facts),
        "upload_bytes_tff_8bit": baselines.tff_8bit_bytes(shapes) * clients,
        "upload_bound_ratio": float(np.mean(ratios)) if ratios else float("nan"),
    }


def download_costs(
    facts: Sequence[MaskFacts], value_format: str, positions: str = "auto"
) -> dict[str, float]:
    """What one client's download costs, three ways.

    Args:
        facts: Per weight (all), the facts of the mask of the entries the
            server sends, flips against the mask the client already holds
            (its positions then cost only what changed; `mask_facts`).
        value_format: The download's value format.
        positions: ``auto``, ``bitmap`` or ``gaps`` (`wire.encoded_size`).

    Returns:
        ``download_bytes`` (exact, `wire.encoded_size_of`),
        ``download_bytes_csr`` (the same message as SciPy CSR) and
        ``download_bound_bits`` (its information bound,
        `baselines.information_bound_bits_of`).
    """
    return {
        "download_bytes": wire.encoded_size_of(facts, value_format, positions),
        "download_bytes_csr": baselines.csr_bytes_of(facts),
        "download_bound_bits": baselines.information_bound_bits_of(facts, value_format),
    }


def packed_bytes(shapes: Sequence[tuple[int, ...]], bits: int) -> int:
    """Values at ``bits`` bits each, each tensor packed to whole bytes."""
    return sum(-(-int(np.prod(s)) * bits // 8) for s in shapes)


def probability_download(
    sent: Sequence[np.ndarray], bits: int, table: dictionary.ValueTable | None = None
) -> tuple[int, float]:
    """FedPM's download: its exact size (a tag byte, the smaller coding) and bound.

    Args:
        sent: The probabilities as sent.
        bits: The bits they are sent at.
        table: Their value table (default: computed).

    Raises:
        wire.CodecMismatchError: If the coded table does not decode to
            ``sent`` (a bug, never expected).
    """
    shapes = [np.shape(p) for p in sent]
    message, bound = dictionary.encode_with_bound(
        dictionary.value_table(sent) if table is None else table
    )
    _check(dictionary.decode_tensors(message, shapes), sent, "download")
    return 1 + min(len(message), packed_bytes(shapes, bits)), bound


def returning_download(
    sent: Sequence[np.ndarray],
    table: dictionary.ValueTable,
    held: dictionary.ValueTable,
    full: tuple[int, float],
) -> tuple[int, float]:
    """A returning FedPM client's download: the change, when smaller than ``full``.

    Args:
        sent: The probabilities as sent.
        table: Their value table.
        held: The value table of the probabilities the client holds.
        full: `probability_download`'s size and bound.

    Returns:
        ``full``, or a tag byte and `dictionary.encode_given`'s message with
        its bound ``n H(new | held)``.

    Raises:
        wire.CodecMismatchError: If the message does not decode to ``sent``.
    """
    # The message is never below its bound: code it only if that could win.
    if dictionary.conditional_bits(table, held) >= 8 * (full[0] - 1):
        return full
    message, bound = dictionary.encode_given(table, held)
    if 1 + len(message) >= full[0]:
        return full
    shapes = [np.shape(p) for p in sent]
    _check(dictionary.decode_given(message, held, shapes), sent, "download")
    return 1 + len(message), bound


def mask_upload(
    masks: Sequence[np.ndarray], coder: bernoulli.MaskCoder
) -> tuple[int, float]:
    """A FedPM mask's upload: its exact size and bound (`bernoulli`).

    Args:
        masks: The mask, one boolean array per weight.
        coder: The round's `bernoulli.MaskCoder`, over the probabilities the
            client downloaded.

    Raises:
        wire.CodecMismatchError: If the coded mask decodes to another.
    """
    message = coder.encode(masks)
    _check(coder.decode(message), masks, "mask")
    return len(message), coder.bits(masks)


def _check(decoded: Sequence[np.ndarray], sent: Sequence[np.ndarray], what: str):
    if any(not np.array_equal(d, s) for d, s in zip(decoded, sent, strict=True)):
        raise wire.CodecMismatchError(f"the coded {what} decodes to another")

"""A round checked against the real codec (``--verify-uploads``), in NumPy.

The round counts each upload's bytes (`tffprune.compression.wire.encoded_size`)
and aggregates inside TFF without ever encoding it. With verification on,
each aggregated client also returns its update as it went into the value
format, and the round is done again here, the slow way::

    payload_k = wire.encode(u_k, m_k)          its size must be the one counted
    s_k, m_k  = wire.decode(payload_k)         the checksum must hold
    x_k       = (w_sent_k + s_k) at m_k        the server's reconstruction
    w'        = fedavg(w, x, weight)  or  sub_fedavg(w, x, m, weight)

and ``w'`` must equal the round's new weights (to float32 rounding).
``w_sent_k`` is the server's float32 copy of what it sent client ``k``
(`tffprune.fl.algorithm.FederatedAlgorithm.sent`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from tffprune.compression import wire
from tffprune.fl.aggregation import fedavg, sub_fedavg


class UploadVerificationError(wire.CodecMismatchError):
    """The real codec and the NumPy aggregation disagree with the round."""


@dataclasses.dataclass(frozen=True)
class SentUpload:
    """One aggregated client's upload, as the codec is to check it.

    Attributes:
        client: Its index (for the error message).
        update: Per weight (all), its update as encoded, before the value
            format.
        masks: Per weight (all), the entries it uploaded.
        held: Per weight, the mask the server already held for it, or None.
        counted_bytes: The size the round counted for it.
        sent: Per weight, the server's float32 copy of what it sent the
            client (0 outside the download's positions).
        weight: Its aggregation weight (examples, or 1).
    """

    client: int
    update: list[np.ndarray]
    masks: list[np.ndarray]
    held: list[np.ndarray | None]
    counted_bytes: int
    sent: list[np.ndarray]
    weight: float


def decoded_upload(
    upload: SentUpload,
    shapes: Sequence[tuple[int, ...]],
    value_format: str,
    positions: str = "auto",
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """What the server reconstructs from ``upload``'s real payload.

    Returns:
        Per weight, ``(w_sent + decoded update)`` at the decoded mask (0
        elsewhere), float32; and the decoded masks.

    Raises:
        UploadVerificationError: If the payload's size is not the one counted,
            or it does not decode.
    """
    payload = wire.encode(
        upload.update, upload.masks, value_format, positions, held=upload.held
    )
    if len(payload) != upload.counted_bytes:
        raise UploadVerificationError(
            f"client {upload.client}: encoded {len(payload)} bytes, counted "
            f"{upload.counted_bytes}"
        )
    try:
        decoded, masks = wire.decode(payload, shapes, held=upload.held)
    except wire.PayloadError as error:
        raise UploadVerificationError(
            f"client {upload.client}: its upload does not decode: {error}"
        ) from None
    values = [
        np.where(mask, start + update, 0.0).astype(np.float32)
        for start, update, mask in zip(upload.sent, decoded, masks, strict=True)
    ]
    return values, masks


def verify_round(
    weights: Sequence[np.ndarray],
    new_weights: Sequence[np.ndarray],
    uploads: Sequence[SentUpload],
    value_format: str,
    positions: str = "auto",
    masked: bool = False,
) -> None:
    """Checks a round's new weights against its uploads' real payloads.

    Args:
        weights: The server weights before the round (all).
        new_weights: The round's new server weights.
        uploads: The aggregated clients' uploads.
        value_format: The uploads' value format.
        positions: ``auto``, ``bitmap`` or ``gaps``.
        masked: Sub-FedAvg's masked mean (each entry over the clients that
            kept it), else FedAvg's weighted mean.

    Raises:
        UploadVerificationError: If an upload's size or payload is wrong, or
            the NumPy aggregation of the decoded uploads differs from
            ``new_weights`` by more than float32 rounding (rtol 1e-4, atol
            1e-5).
    """
    shapes = [np.shape(w) for w in weights]
    decoded = [decoded_upload(u, shapes, value_format, positions) for u in uploads]
    weighting = [u.weight for u in uploads]
    if not decoded:
        expected = list(weights)
    elif masked:
        values, masks = zip(*decoded, strict=True)
        expected = sub_fedavg(weights, list(values), list(masks), weighting)
    else:
        expected = fedavg(weights, [values for values, _ in decoded], weighting)
    for index, (ours, theirs) in enumerate(zip(new_weights, expected, strict=True)):
        if not np.allclose(ours, theirs, rtol=1e-4, atol=1e-5):
            worst = float(np.max(np.abs(ours - theirs)))
            raise UploadVerificationError(
                f"weight {index}: the round and the decoded uploads' NumPy "
                f"aggregation differ by up to {worst:.3g}"
            )

"""Error feedback: what quantization drops this round is sent in a later one.

Seide et al. (2014, 1-bit SGD) and Karimireddy et al. (2019, EF-signSGD): a
client keeps a residual ``e`` of what its lossy upload failed to carry and
adds it to its next update. With ``Q`` the value format's round trip
(`tffprune.compression.wire.round_trip`) over the entries the client sends
(mask ``m``)::

    c   = (u + e) ⊙ m          corrected update
    s   = Q(c)                 what the server decodes
    e'  = fp16((c - s) ⊙ m)    what it dropped, kept for next time

so over k rounds ``sum s_t = sum (u_t ⊙ m_t) + e_0 - e_k`` where the mask
does not change (``e_0 = 0``), up to the float16 rounding of each residual
(a relative 2**-11 of what was dropped): nothing is lost, it arrives late.
Entries a client prunes leave its residual (their weight is gone).

Residuals are kept in float16 (`RESIDUAL_DTYPE`): each is a file the client
reads and writes every time it is sampled (the whole model's size,
`tffprune.fl.residual_store`), and half the bytes are half that time and
disk.

This is the NumPy reference; the round computes the same in TensorFlow
(`tffprune.compression.tf_values.with_error_feedback`).
"""

from __future__ import annotations

import numpy as np

from tffprune.compression.wire import round_trip

RESIDUAL_DTYPE = np.float16
"""The type a client's residual is kept and moved in."""


def error_feedback_step(
    update: np.ndarray, residual: np.ndarray, mask: np.ndarray, value_format: str
) -> tuple[np.ndarray, np.ndarray]:
    """One upload with error feedback.

    Args:
        update: The client's update (trained minus received), float32.
        residual: What earlier uploads dropped (zeros at first).
        mask: Entries sent (True); the rest are neither sent nor kept.
        value_format: The upload's value format.

    Returns:
        ``(sent, residual)``: the values the server decodes (0 outside the
        mask, float32) and the new residual (`RESIDUAL_DTYPE`).
    """
    mask = np.asarray(mask, bool)
    corrected = np.where(
        mask, np.asarray(update, np.float32) + np.asarray(residual, np.float32), 0.0
    ).astype(np.float32)
    sent = np.zeros_like(corrected)
    sent[mask] = round_trip(corrected[mask], value_format)
    return sent, np.where(mask, corrected - sent, 0.0).astype(RESIDUAL_DTYPE)

"""What crosses between the roles of a round, as named structures.

A round (`tffprune.learning.composers.compose_round`) passes these between its
four roles. They are ``NamedTuple``s, so TFF types them as named structures
(``<mask=...,counts=...>``) and the TensorFlow code reads fields by name, never
by position. No TensorFlow or TFF here: the fields are whatever the side that
builds them holds (NumPy arrays on the driver, tensors inside a computation).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from tffprune.pruning.counts import PruningStep

__all__ = [
    "ClientInput",
    "ClientOutput",
    "Download",
    "MaskVote",
    "PruningStep",
    "SampledMask",
    "SampleInput",
]


class ClientInput(NamedTuple):
    """A sampled client's own state and instructions for one round.

    Attributes:
        mask: The subnetwork the client trains (all kept for a FedAvg client
            or a new one), packed: per trainable weight, a uint8 vector of
            its mask eight entries a byte (`tffprune.pruning.packed_masks`).
        counts: Its `PruningStep` this round (all 0: the mask stays).
        delivered: bool, False if its upload is lost on the way (simulated).
        residual_files: With error feedback, ``(read, write)``: the file
            holding its residual ("" for none yet) and the one its new
            residual is written to (`tffprune.fl.residual_store`); else ``()``.
    """

    mask: Any
    counts: PruningStep
    delivered: Any
    residual_files: Any


class Download(NamedTuple):
    """What a client starts its round from (the distributor's result).

    Attributes:
        received: Every weight (trainable then non-trainable) as the client
            decodes its download: its subnetwork's values in the download's
            value format, 0 elsewhere.
        server: The server's float32 weights as broadcast. A simulation
            device: the server adds each decoded update to its own float32
            copy, and the client work computes here what the server will
            reconstruct. Never counted as sent. Empty for a float32
            download: ``received`` is then that copy where it matters.
    """

    received: Any
    server: Any


class ClientOutput(NamedTuple):
    """What a round returns per sampled client (its new own state and costs).

    Attributes:
        mask: Its new masks (trainable weights), packed as
            `ClientInput.mask`.
        num_examples: int64, examples seen in training over all epochs.
        loss_sum: float32, training loss summed over those examples.
        finite: bool, False if training produced NaN or Inf (upload dropped).
        zero_kept: Per weight, whether a value it sends is exactly 0 (for
            `tffprune.compression.wire.encoded_size`).
        residual_written: bool, True once its new residual is in its file.
        personal: With personal models, per weight, its own model's values at
            the True entries of its new mask (all entries of a non-trainable
            weight), 1-D in flat order; else ``[]``.
        mask_distance: float32, the mask-distance rule's distance between its
            early and final candidate masks; -1 when the rule did not apply.
        values: With ``return_values``, per weight, the update it encoded
            (before the value format); else ``[]``.
    """

    mask: Any
    num_examples: Any
    loss_sum: Any
    finite: Any
    zero_kept: Any
    residual_written: Any
    personal: Any
    mask_distance: Any
    values: Any


class SampleInput(NamedTuple):
    """A FedPM client's instructions for one round (it keeps no state).

    Attributes:
        seed: int32 ``[2]``, the stateless seed of its mask samples this round.
        delivered: bool, False if its upload is lost on the way (simulated).
    """

    seed: Any
    delivered: Any


class MaskVote(NamedTuple):
    """A FedPM client's upload as the server's posterior counts it.

    Attributes:
        masks: Per trainable weight, its sampled mask as float32 (1 kept, 0
            not), times ``count``. Summed over the clients they count the
            masks that kept each weight; the server smooths the count
            (`tffprune.pruning.probabilistic.smoothed_sum`).
        count: float32, 1 for an upload that arrived, else 0.
    """

    masks: Any
    count: Any


class SampledMask(NamedTuple):
    """What a round returns per FedPM client.

    Attributes:
        mask: Per trainable weight, the mask it sampled and uploaded (bool).
        num_examples: int64, examples seen in training over all epochs.
        loss_sum: float32, training loss summed over those examples.
        finite: bool, False if its scores became NaN or Inf (upload dropped).
    """

    mask: Any
    num_examples: Any
    loss_sum: Any
    finite: Any

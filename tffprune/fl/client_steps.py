"""The steps a client's round is built from, in TensorFlow (no TFF).

`tffprune.fl.client.build_client_work_fn` trains, then runs these steps, each
a small frozen record holding its own settings and one TensorFlow method:

* `MethodPruning`: the pruning method's candidate masks at the round's counts;
* guards (`MaskDistanceGuard`, `AccuracyGuard`, or any object with
  ``early_snapshot`` and ``check(trial)``): each may refuse the candidate,
  and the client keeps its mask;
* `UpdateEncoding` / `ErrorFeedbackEncoding`: the update in the upload's
  value format, as the server decodes it;
* `Upload`: what crosses to the aggregator, masked (Sub-FedAvg) or not.

`ClientWorkConfig` holds one of each: the client work's one record. A variant
swaps a step (a guard of its own, another encoding) and keeps the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple, Protocol

import tensorflow as tf

from tffprune.compression.tf_values import transmitted, with_error_feedback
from tffprune.fl.residual_store import read_tensors, write_tensors
from tffprune.pruning.policy import PrunableWeight
from tffprune.pruning.tf_masks import build_masks, mask_distance


class Trial(NamedTuple):
    """What a guard judges: a client's trained model and its candidate mask.

    Attributes:
        weights: The trained trainable weights (finite).
        buffers: The trained non-trainable weights.
        early: The trainable weights after the first local epoch (only when a
            guard asks for ``early_snapshot``; else ``[]``).
        masks: The client's masks before this round's pruning (bool).
        candidate: The pruning method's new masks (bool).
        counts: The client's `PruningStep`.
        targets: The indices of the prunable weights.
        prune: ``prune(weights) -> masks``: the method's masks for other
            weights at the same counts.
        accuracy: ``accuracy(trainable) -> float32``: the accuracy of those
            weights (with ``buffers``) on the client's training data.
    """

    weights: list
    buffers: list
    early: list
    masks: list
    candidate: list
    counts: Any
    targets: tuple[int, ...]
    prune: Callable[[list], list]
    accuracy: Callable[[list], tf.Tensor]


class Guard(Protocol):
    """A rule that may refuse a client's new mask (the mask then stays).

    ``early_snapshot``: whether ``check`` reads ``trial.early``; ``check``
    runs in TensorFlow (`AccuracyGuard` is one).
    """

    early_snapshot: ClassVar[bool]

    def check(self, trial: Trial) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """``(accept, measurements)``: a bool scalar and named float32 ones."""


@dataclasses.dataclass(frozen=True)
class MethodPruning:
    """Prune by a registered method (`tffprune.pruning.methods`).

    Attributes:
        method: The method's name (``none``: the mask stays).
        targets: The prunable weights (`PruningPolicy.select`).
    """

    method: str
    targets: tuple[PrunableWeight, ...] = ()

    @tf.autograph.experimental.do_not_convert
    def masks(self, weights: list, masks: list, counts) -> list:
        """The method's masks for ``weights`` at the step's counts."""
        return build_masks(
            self.method,
            list(self.targets),
            weights,
            masks,
            (counts.entries, counts.slices, counts.total),
        )


@dataclasses.dataclass(frozen=True)
class MaskDistanceGuard:
    """Sub-FedAvg's reference rule: prune only while the masks still move.

    A candidate mask drawn after the first local epoch and the one drawn after
    the last must differ by more than ``threshold`` (mean Hamming distance,
    `tffprune.pruning.tf_masks.mask_distance`). Measures ``mask_distance``
    (-1 when the rule did not apply: no early snapshot or nothing to prune).
    """

    threshold: float
    early_snapshot: ClassVar[bool] = True

    @tf.autograph.experimental.do_not_convert
    def check(self, trial: Trial) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Accepts while the masks move; measures their distance."""
        if not trial.targets:
            return tf.constant(True), {"mask_distance": tf.constant(-1.0)}
        early_examples = trial.counts.early_examples
        early = trial.prune(trial.early)
        distance = tf.where(
            early_examples > 0,
            mask_distance(
                [early[i] for i in trial.targets],
                [trial.candidate[i] for i in trial.targets],
            ),
            -1.0,
        )
        moving = tf.logical_or(early_examples <= 0, distance > self.threshold)
        return moving, {"mask_distance": distance}


@dataclasses.dataclass(frozen=True)
class AccuracyGuard:
    """Keep a new mask only if the pruned model is at least this accurate.

    Sub-FedAvg's guard: accuracy of the trained weights times the candidate
    mask on the client's own training data.
    """

    threshold: float
    early_snapshot: ClassVar[bool] = False

    @tf.autograph.experimental.do_not_convert
    def check(self, trial: Trial) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Accepts if the pruned model reaches the threshold."""
        pruned = [
            w * tf.cast(m, tf.float32)
            for w, m in zip(trial.weights, trial.candidate, strict=True)
        ]
        return trial.accuracy(pruned) >= self.threshold, {}


@dataclasses.dataclass(frozen=True)
class UpdateEncoding:
    """The update in a value format (`tffprune.compression.wire.VALUE_FORMATS`).

    Attributes:
        value_format: The upload's value format.
    """

    value_format: str = "float32"
    error_feedback: ClassVar[bool] = False

    @tf.autograph.experimental.do_not_convert
    def encode(self, updates: list, kept: list, residual_files) -> tuple:
        """``(decoded, encoded, residual_written)``.

        What the server decodes, what was encoded (the update, plus with error
        feedback the client's residual) and whether a new residual was written.
        """
        decoded = [
            transmitted(u, mask, self.value_format)
            for u, mask in zip(updates, kept, strict=True)
        ]
        return decoded, updates, tf.constant(False)


@dataclasses.dataclass(frozen=True)
class ErrorFeedbackEncoding(UpdateEncoding):
    """`UpdateEncoding` with error feedback.

    The client adds its residual (read from ``residual_files[0]``; none yet if
    "") to its update, and writes what the value format dropped to
    ``residual_files[1]`` (`tffprune.fl.residual_store`).
    """

    error_feedback: ClassVar[bool] = True

    @tf.autograph.experimental.do_not_convert
    def encode(self, updates: list, kept: list, residual_files) -> tuple:
        """As `UpdateEncoding.encode`, the residual added and the new one kept."""
        residual = read_tensors(residual_files[0], [tuple(u.shape) for u in updates])
        feedback = [
            with_error_feedback(u, e, mask, self.value_format)
            for u, e, mask in zip(updates, residual, kept, strict=True)
        ]
        written = write_tensors(residual_files[1], [e for _, e, _ in feedback])
        return [s for s, _, _ in feedback], [c for _, _, c in feedback], written


@dataclasses.dataclass(frozen=True)
class Upload:
    """What a client's upload carries to the aggregator.

    Attributes:
        masked: Carry the client's mask (Sub-FedAvg's masked mean); else the
            server takes pruned entries as 0 (FedAvg).
        weight_by_examples: Weight the upload by the examples seen (else 1).
    """

    masked: bool = True
    weight_by_examples: bool = False

    @tf.autograph.experimental.do_not_convert
    def build(self, values: list, kept: list, num_examples, aggregated) -> tuple:
        """``(values, masks, weight)`` if masked, else ``(values, weight)``.

        The weight is 0 unless ``aggregated`` (a bool scalar).
        """
        base = tf.cast(num_examples, tf.float32) if self.weight_by_examples else 1.0
        weight = tf.where(aggregated, base, 0.0)
        return (values, kept, weight) if self.masked else (values, weight)


@dataclasses.dataclass(frozen=True)
class ClientWorkConfig:
    """The client work's record: one of each step, and what it reports.

    Attributes:
        pruning: The pruning step.
        guards: Rules that may refuse the new mask, in order.
        encoding: The update's encoding.
        upload: What the upload carries.
        personal_models: Also return the client's own model after its local
            training and pruning (trained weights at its new mask, and its
            buffers): the model Sub-FedAvg's reference code reports.
        return_values: Also report the encoded update (for
            ``--verify-uploads``, which encodes it with the real codec).
    """

    pruning: MethodPruning
    guards: tuple[Guard, ...] = ()
    encoding: UpdateEncoding = UpdateEncoding()
    upload: Upload = Upload()
    personal_models: bool = False
    return_values: bool = False

    @classmethod
    def from_options(
        cls,
        method: str,
        targets: tuple[PrunableWeight, ...],
        *,
        value_format: str = "float32",
        masked_upload: bool = True,
        weight_by_examples: bool = False,
        accuracy_threshold: float = 0.0,
        mask_distance_threshold: float | None = None,
        guards: tuple[Guard, ...] = (),
        error_feedback: bool = False,
        personal_models: bool = False,
        return_values: bool = False,
    ) -> ClientWorkConfig:
        """The steps for options spelled as `tffprune.train` spells them.

        ``accuracy_threshold`` 0 and ``mask_distance_threshold`` None mean no
        such guard; ``guards`` come after theirs.
        """
        rules: list[Guard] = []
        if mask_distance_threshold is not None:
            rules.append(MaskDistanceGuard(mask_distance_threshold))
        if accuracy_threshold > 0:
            rules.append(AccuracyGuard(accuracy_threshold))
        encoding = ErrorFeedbackEncoding if error_feedback else UpdateEncoding
        return cls(
            pruning=MethodPruning(method, tuple(targets)),
            guards=(*rules, *guards),
            encoding=encoding(value_format),
            upload=Upload(masked_upload, weight_by_examples),
            personal_models=personal_models,
            return_values=return_values,
        )

    @property
    def early_snapshot(self) -> bool:
        """Whether a guard needs the weights after the first local epoch."""
        return any(getattr(guard, "early_snapshot", False) for guard in self.guards)

    @property
    def mask_distance_threshold(self) -> float | None:
        """The mask-distance rule's threshold (None: no such guard)."""
        for guard in self.guards:
            if isinstance(guard, MaskDistanceGuard):
                return guard.threshold
        return None

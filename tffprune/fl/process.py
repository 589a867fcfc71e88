"""The driver's handle on the composed round: NumPy in, NumPy out.

The round itself is the public TFF process of `tffprune.learning`
(`build_round`: four roles composed by `tffprune.learning.composers`; the
diagram is there). `RoundProcess` builds it for a run's settings and runs it
with what the driver holds: the server weights and every role's state, and
per sampled client its `ClientInput` (mask, pruning step, residual files);
it returns the new server state and a `ClientReport` per client (the trained
weights and the residuals never leave the runtime). Only this module,
`runtime` and `tffprune.learning` import TFF.
"""

from __future__ import annotations

import dataclasses
import errno
import re
from collections.abc import Callable, Sequence

import grpc
import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tffprune.compression.compact import CompactTensors, at_positions
from tffprune.fl.client_steps import ClientWorkConfig
from tffprune.fl.mergeable import (
    OrderedMergeableContext,
    collect_clients,
    uncollect_clients,
)
from tffprune.fl.messages import ClientInput
from tffprune.fl.runtime import ensure_runtime
from tffprune.learning.algorithms import build_round
from tffprune.learning.client_data import with_client_files
from tffprune.learning.composers import RoundOutput as ComposedOutput
from tffprune.pruning.packed_masks import PackedMasks


@dataclasses.dataclass
class ClientReport:
    """What the driver learns from one client in a round.

    Attributes:
        masks: The client's new boolean masks (trainable weights), packed
            as they came from the round (`PackedMasks`).
        num_examples: Examples seen in training (over all epochs).
        mean_loss: Mean training loss over those examples.
        finite: False if training produced NaN or Inf (the upload was dropped).
        zero_kept: Per weight (all), whether a value sent is exactly 0.
        personal: With ``personal_models``, the client's own model after
            training and pruning (all weights, at its new masks); else None.
        mask_distance: The mask-distance rule's distance between its early
            and final candidate masks; None when the rule did not apply.
        values: With ``return_values``: the update as encoded, before the
            value format (all weights), for the real codec to check.
    """

    masks: PackedMasks
    num_examples: int
    mean_loss: float
    finite: bool
    zero_kept: list[bool]
    personal: CompactTensors | None = None
    mask_distance: float | None = None
    values: list[np.ndarray] | None = None


@dataclasses.dataclass
class RoundOutput:
    """One round's result as the driver sees it.

    Attributes:
        weights: The new server weights (trainable then non-trainable).
        roles: The new states of the four roles, ``(distributor,
            client_work, aggregator, finalizer)``.
        measurements: Per role, its measurements (``{"aggregator":
            {"covered_fraction": ...}, ...}``).
        reports: One `ClientReport` per sampled client, in order.
    """

    weights: list[np.ndarray]
    roles: tuple
    measurements: dict[str, dict[str, float]]
    reports: list[ClientReport]


@dataclasses.dataclass(frozen=True)
class RoundParts:
    """The choices that make an algorithm.

    Attributes:
        model_fn: Builds a fresh Keras model (no arguments).
        element_spec: ``(inputs, labels)`` batch spec of the client datasets.
        client_optimizer: The local ``tff.learning.optimizers`` optimizer.
        client_work: Pruning, upload format and guards of the client work.
        server_optimizer: The server's optimizer (default ``build_sgdm(1.0)``).
        download_values: The download's value format.
        model_aggregator: A TFF aggregation factory (default: the round's own
            mean, `tffprune.learning.aggregators.build_round_aggregator`).
        batch_size: With a batch size, each client's data in a round is a
            file reference read where the client runs, in batches of it
            (`tffprune.learning.client_data.with_client_files`); None: its
            batched dataset.
    """

    model_fn: Callable[[], tf.keras.Model]
    element_spec: tuple[tf.TensorSpec, tf.TensorSpec]
    client_optimizer: object
    client_work: ClientWorkConfig
    server_optimizer: object = None
    download_values: str = "float32"
    model_aggregator: object = None
    batch_size: int | None = None


# The path may follow the names of the functions it failed in
# ("{{function_node __inference_client_work_12}} /run/residuals/c0_r0.residual").
_FILE_FAILURE = re.compile(
    r"Failed to run computation: (?:\{\{function_node [^}]*\}\}\s*)*"
    r"(?P<path>[^;\n]+); (?P<reason>[^\n]+)"
    r".*\{\{node (?:ReadFile|WriteFile)\}\}",
    re.DOTALL,
)


def _file_error(error: grpc.RpcError) -> OSError | None:
    """A file the round could not read or write, as an `OSError`.

    A residual or client-data file: a full disk, a missing directory, or a
    remote worker that does not see the run directory fail the round inside
    the TFF worker; the driver gets
    them as a gRPC error. None for any other failure.
    """
    details = error.details() if callable(getattr(error, "details", None)) else ""
    match = _FILE_FAILURE.search(details or "")
    if match is None:
        return None
    return OSError(errno.EIO, match["reason"].strip(), match["path"])


def algorithm_state(weights: Sequence[np.ndarray], roles: tuple):
    """A composed round's server state from the driver's weights and roles."""
    return tff.learning.templates.LearningAlgorithmState(list(weights), *roles)


def split_state(state) -> tuple[list[np.ndarray], tuple]:
    """The driver's ``(weights, roles)`` of a composed round's server state."""
    return (
        [np.asarray(w) for w in state.global_model_weights],
        (state.distributor, state.client_work, state.aggregator, state.finalizer),
    )


def measurements_of(metrics) -> dict[str, dict[str, float]]:
    """A round's metrics, per role, as floats (a role without any: ``{}``)."""
    return {
        role: {name: float(value) for name, value in dict(values or {}).items()}
        for role, values in metrics.items()
    }


# Per round computation, the same round with its clients' outputs gathered at
# SERVER (`tffprune.fl.mergeable`), built once.
_COLLECTED: dict[int, tuple] = {}


def run_on_runtime(computation: tff.Computation, *arguments):
    """Runs a composed round's computation on tffprune's runtime.

    Over several workers (an `OrderedMergeableContext`) a round's ``next``
    runs with its clients' outputs gathered at SERVER, so that no client
    trains twice. A residual file the round could not read or write is an
    `OSError`.

    Returns:
        What the computation returns; for a ``next``, a `RoundOutput` of
        `tffprune.learning.composers`.
    """
    # Never let TFF start its own (self-orphaning) default worker.
    ensure_runtime()
    merged = isinstance(
        tff.framework.get_context_stack().current, OrderedMergeableContext
    )
    try:
        if not merged or not arguments:
            return computation(*arguments)
        if id(computation) not in _COLLECTED:
            member = computation.type_signature.result[1].member
            _COLLECTED[id(computation)] = (
                computation,
                collect_clients(computation),
                member,
            )
        _, collected, member = _COLLECTED[id(computation)]
        state, gathered, metrics = collected(*arguments)
        return ComposedOutput(state, uncollect_clients(gathered, member), metrics)
    except grpc.RpcError as error:
        raise _file_error(error) or error from None


class RoundProcess:
    """Builds and runs the round computation for one model architecture.

    Args:
        parts: The algorithm's parts.
    """

    def __init__(self, parts: RoundParts) -> None:
        # Never let TFF start its own (self-orphaning) default worker.
        ensure_runtime()
        self.error_feedback = parts.client_work.encoding.error_feedback
        self.personal_models = parts.client_work.personal_models
        self.return_values = parts.client_work.return_values
        self.iterative_process = build_round(
            parts.model_fn,
            parts.element_spec,
            parts.client_work,
            client_optimizer=parts.client_optimizer,
            server_optimizer=parts.server_optimizer
            or tff.learning.optimizers.build_sgdm(1.0),
            model_aggregator=parts.model_aggregator,
            download_values=parts.download_values,
        )
        if parts.batch_size is not None:
            self.iterative_process = with_client_files(
                self.iterative_process, parts.element_spec, parts.batch_size
            )
        # Shapes from the process's own types: no further model is built.
        signature = self.iterative_process.next.type_signature
        weights_type = signature.parameter[0].member.global_model_weights
        self.num_trainable = len(signature.parameter[1].member.mask)
        shapes = [tuple(t.shape) for t in weights_type]
        self.trainable_shapes = shapes[: self.num_trainable]
        self.non_trainable_shapes = shapes[self.num_trainable :]

    def initialize_roles(self) -> tuple:
        """The roles' initial states, ``(distributor, client_work, ...)``."""
        return split_state(run_on_runtime(self.iterative_process.initialize))[1]

    def next(
        self,
        weights: Sequence[np.ndarray],
        roles: tuple,
        inputs: Sequence[ClientInput],
        datasets: Sequence[tf.data.Dataset],
    ) -> RoundOutput:
        """Runs one round (one TFF call).

        Args:
            weights: Server weights (trainable then non-trainable).
            roles: From `initialize_roles` or the last round.
            inputs: Per sampled client, its `ClientInput` (mask, pruning
                step, whether its upload arrives, and with error feedback
                its residual's two files).
            datasets: Per client, its batched training data for this round,
                or with ``parts.batch_size`` its ``(path, order)`` reference
                (`tffprune.data.client_files.ClientFiles.reference`).

        Returns:
            The new weights and role states, the roles' measurements and one
            `ClientReport` per client.

        Raises:
            ValueError: With error feedback, if a client has no residual files.
        """
        if self.error_feedback and any(len(i.residual_files) != 2 for i in inputs):
            raise ValueError("error feedback needs residual files for every client")
        output = run_on_runtime(
            self.iterative_process.next,
            algorithm_state(weights, roles),
            list(inputs),
            list(datasets),
        )
        new_weights, new_roles = split_state(output.state)
        buffers = [np.ones(s, np.bool_) for s in self.non_trainable_shapes]
        return RoundOutput(
            weights=new_weights,
            roles=new_roles,
            measurements=measurements_of(output.metrics),
            reports=[self._report(o, buffers) for o in output.clients],
        )

    def _report(self, output, buffers: list[np.ndarray]) -> ClientReport:
        """A client's `ClientOutput` as NumPy."""
        count = int(output.num_examples)
        masks = PackedMasks(output.mask, self.trainable_shapes)
        return ClientReport(
            masks=masks,
            num_examples=count,
            mean_loss=float(output.loss_sum) / count if count else float("nan"),
            finite=bool(output.finite),
            zero_kept=[bool(z) for z in output.zero_kept],
            personal=at_positions([*masks, *buffers], output.personal)
            if self.personal_models
            else None,
            mask_distance=float(output.mask_distance)
            if output.mask_distance >= 0
            else None,
            values=[np.asarray(v) for v in output.values]
            if self.return_values
            else None,
        )

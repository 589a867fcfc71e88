"""FedPM (Isik et al., 2023) as a composed round: masks over a seeded network.

The weights stay frozen at signed constants drawn from a seed; the server's
model is one probability per weight, and a round is the same four roles as
Sub-FedAvg's (`tffprune.learning.composers.compose_round`), three of them
FedPM's own and the aggregator TFF's::

    distributor   p at `download_bits` (`probabilistic.tf_quantized`)  -> CLIENTS
    client work   train scores from logit(p), upload a sampled mask
                  (`tffprune.fl.mask_training`)                        -> MaskVote
    aggregator    TFF's SumFactory: sum of the masks, count
    finalizer     Beta posterior per weight, reset every `reset_every`
                  rounds; p' = its mode (`probabilistic.tf_posterior_update`)

`build_fedpm` returns a `FedPMProcess`: ``next(state, client_inputs,
client_data)``, with one `SampleInput` per sampled client (the seed of its
samples, and whether its upload arrives; `FedPMProcess.inputs` makes them).
FedPM clients keep no state between rounds. ``state.global_model_weights``
is the list of probabilities, one per trainable weight; `FedPMProcess.
model_weights` turns them into the network they make most likely.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Callable, Hashable, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tffprune.compression.wire import PROBABILITY_BITS
from tffprune.fl.mask_training import build_mask_training_fn
from tffprune.fl.messages import SampleInput
from tffprune.fl.runtime import ensure_runtime
from tffprune.learning.client_works import build_client_work
from tffprune.learning.composers import compose_round
from tffprune.learning.distributors import build_round_counter
from tffprune.learning.finalizers import server_step
from tffprune.learning.optimizers import in_place
from tffprune.pruning import probabilistic

__all__ = ["FedPMProcess", "build_fedpm"]


class FedPMProcess(tff.templates.IterativeProcess):
    """`build_fedpm`'s process, with what a loop needs to drive it.

    Attributes:
        seed: The network's seed (its frozen weights' signs).
        shapes: The trainable weights' shapes.
        download_bits: The bits of each probability sent down.
    """

    def __init__(
        self,
        composed: tff.templates.IterativeProcess,
        seed: int,
        shapes: Sequence[tuple[int, ...]],
        download_bits: int,
    ) -> None:
        super().__init__(composed.initialize, composed.next)
        self.seed = int(seed)
        self.shapes = [tuple(s) for s in shapes]
        self.download_bits = download_bits

    def with_computations(
        self, composed: tff.templates.IterativeProcess
    ) -> FedPMProcess:
        """This process's helpers around ``composed``'s ``initialize`` and ``next``.

        For a process composed from this one (`with_client_files`): the same
        seed, shapes and download bits.
        """
        return FedPMProcess(composed, self.seed, self.shapes, self.download_bits)

    def frozen_weights(self) -> list[np.ndarray]:
        """The network's frozen weights (from the seed)."""
        return [
            w.numpy() for w in probabilistic.tf_signed_constants(self.shapes, self.seed)
        ]

    def model_weights(
        self, probabilities: Sequence[np.ndarray]
    ) -> tff.learning.models.ModelWeights:
        """The network ``probabilities`` make most likely (``w0 * (p > 0.5)``).

        Args:
            probabilities: ``state.global_model_weights``.
        """
        weights = probabilistic.most_likely(
            self.frozen_weights(), [np.asarray(p) for p in probabilities]
        )
        return tff.learning.models.ModelWeights(trainable=weights, non_trainable=[])

    def inputs(
        self,
        client_ids: Sequence[Hashable],
        round_number: int,
        delivered: Sequence[bool] | None = None,
    ) -> list[SampleInput]:
        """The sampled clients' `SampleInput`s: seeds from (seed, round, id)."""
        delivered = [True] * len(client_ids) if delivered is None else delivered
        return [
            SampleInput(_client_seed(self.seed, round_number, c), np.bool_(arrived))
            for c, arrived in zip(client_ids, delivered, strict=True)
        ]


def _client_seed(seed: int, round_number: int, client_id: Hashable) -> np.ndarray:
    text = f"{seed}:{int(round_number)}:{type(client_id).__name__}:{client_id}"
    digest = hashlib.sha256(text.encode()).digest()
    return np.frombuffer(digest[:8], "<i4").copy()


def _sample_input_type() -> tff.Type:
    return tff.StructWithPythonType(
        [
            ("seed", tff.TensorType(np.int32, [2])),
            ("delivered", tff.TensorType(np.bool_)),
        ],
        SampleInput,
    )


def build_probability_distributor(
    probabilities_type: tff.Type, client_input_type: tff.Type, download_bits: int
) -> tff.templates.MeasuredProcess:
    """Broadcasts the probabilities at ``download_bits`` bits each.

    Returns:
        ``next(state, p@SERVER, inputs@CLIENTS) -> (state, q@CLIENTS, <>)``
        with ``q = probabilistic.tf_quantized(p, download_bits)``; the state
        counts the rounds distributed.
    """
    if download_bits not in PROBABILITY_BITS:
        bits = ", ".join(map(str, PROBABILITY_BITS))
        raise ValueError(f"download_bits must be one of {bits}, got {download_bits!r}")

    @tff.tensorflow.computation(probabilities_type)
    def quantize(probabilities):
        return [probabilistic.tf_quantized(p, download_bits) for p in probabilities]

    initialize, count = build_round_counter()

    @tff.federated_computation(
        initialize.type_signature.result,
        tff.FederatedType(probabilities_type, tff.SERVER),
        tff.FederatedType(client_input_type, tff.CLIENTS),
    )
    def next_fn(state, probabilities, clients):
        del clients  # every client gets the same
        sent = tff.federated_broadcast(tff.federated_map(quantize, probabilities))
        return tff.templates.MeasuredProcessOutput(
            state=tff.federated_map(count, state),
            result=sent,
            measurements=tff.federated_value(collections.OrderedDict(), tff.SERVER),
        )

    return tff.templates.MeasuredProcess(initialize, next_fn)


def build_posterior_finalizer(
    probabilities_type: tff.Type, votes_type: tff.Type, reset_every: int = 1
) -> tff.templates.MeasuredProcess:
    """The server's Beta posterior per weight (`probabilistic.posterior_update`).

    Args:
        probabilities_type: The probabilities' type.
        votes_type: The aggregated `MaskVote` (sums and count).
        reset_every: Reset to the uniform prior every this many rounds (1:
            FedPM's code; 0: never).

    Returns:
        ``next(state, p@SERVER, votes@SERVER) -> (state, p'@SERVER,
        <density, mean_probability>@SERVER)``; ``density`` is the fraction of
        weights with ``p' > 0.5`` (the most likely network's).
    """
    if reset_every < 0:
        raise ValueError(f"reset_every must be >= 0, got {reset_every}")
    shapes = [tuple(t.shape) for t in probabilities_type]

    @tff.tensorflow.computation()
    def initial_state():
        ones = [tf.fill(s, probabilistic.PRIOR) for s in shapes]
        return collections.OrderedDict(
            alpha=ones, beta=list(ones), rounds=tf.constant(0, tf.int32)
        )

    state_type = initial_state.type_signature.result

    @tff.tensorflow.computation(state_type, probabilities_type, votes_type)
    def apply(state, probabilities, votes):
        reset = (
            tf.equal(state["rounds"] % reset_every, 0)
            if reset_every
            else tf.constant(False)
        )
        alphas, betas, modes = [], [], []
        for alpha, beta, p, total in zip(
            state["alpha"], state["beta"], probabilities, votes.masks, strict=True
        ):
            alpha, beta, mode = probabilistic.tf_posterior_update(
                alpha, beta, p, total, votes.count, reset
            )
            alphas.append(alpha)
            betas.append(beta)
            modes.append(mode)
        size = sum(int(np.prod(s)) for s in shapes)
        measurements = collections.OrderedDict(
            density=tf.add_n(
                [tf.reduce_sum(tf.cast(m > 0.5, tf.float32)) for m in modes]
            )
            / size,
            mean_probability=tf.add_n([tf.reduce_sum(m) for m in modes]) / size,
        )
        new_state = collections.OrderedDict(
            alpha=alphas, beta=betas, rounds=state["rounds"] + 1
        )
        return new_state, modes, measurements

    initialize, next_fn = server_step(
        initial_state, apply, probabilities_type, votes_type
    )
    return tff.templates.MeasuredProcess(initialize, next_fn)


def build_fedpm(
    model_fn: Callable[[], tf.keras.Model],
    input_spec,
    *,
    seed: int = 0,
    client_optimizer_fn: tff.learning.optimizers.Optimizer | None = None,
    download_bits: int = 32,
    reset_every: int = 1,
) -> FedPMProcess:
    """FedPM as a TFF iterative process (module docstring).

    Args:
        model_fn: Builds a new Keras classification model (no arguments) with
            no non-trainable weights: every weight is frozen at the seed's.
        input_spec: The element spec of the clients' batched datasets.
        seed: The network's seed: its frozen weights and first probabilities.
        client_optimizer_fn: The scores' optimizer (default Adam at 0.1,
            FedPM's code's).
        download_bits: The bits of each probability sent down (32: float32).
        reset_every: The posterior's reset period in rounds (1: every round,
            FedPM's code's; 0: never).

    Returns:
        The process: ``initialize() -> state@SERVER``, ``next(state,
        SampleInput@CLIENTS, data@CLIENTS) -> RoundOutput(state,
        SampledMask@CLIENTS, metrics)``.

    Raises:
        ValueError: If the model has non-trainable weights, or on a bad option.
    """
    ensure_runtime()
    reference = model_fn()
    probabilistic.check_model(reference)
    shapes = [tuple(w.shape) for w in reference.trainable_weights]
    optimizer = client_optimizer_fn or tff.learning.optimizers.build_adam(0.1)
    probabilities_type = tff.StructWithPythonType(
        [tff.TensorType(np.float32, s) for s in shapes], list
    )
    inputs_type = _sample_input_type()
    dataset_type = tff.SequenceType(tff.types.tensorflow_to_type(input_spec))

    @tff.tensorflow.computation()
    def initial_probabilities():
        return probabilistic.tf_initial_probabilities(shapes, seed)

    @tff.tensorflow.computation(probabilities_type, inputs_type, dataset_type)
    def client_round(probabilities, client, dataset):
        run = build_mask_training_fn(model_fn, in_place(optimizer), seed)
        return run(list(probabilities), client, dataset)

    distributor = build_probability_distributor(
        probabilities_type, inputs_type, download_bits
    )
    client_work = build_client_work(client_round)
    votes_type = client_round.type_signature.result[0]
    aggregator = tff.aggregators.SumFactory().create(votes_type)
    finalizer = build_posterior_finalizer(
        probabilities_type,
        aggregator.next.type_signature.result.result.member,
        reset_every,
    )
    composed = compose_round(
        initial_probabilities, distributor, client_work, aggregator, finalizer
    )
    model_fn()  # Keras' classes back to their eager bases (`build_round`).
    return FedPMProcess(composed, seed, shapes, download_bits)

"""Pruned FedAvg and Sub-FedAvg as TFF processes, built like TFF's own.

`build_fedavg` and `build_sub_fedavg` are shaped like
``tff.learning.algorithms.build_weighted_fed_avg``: a ``model_fn``, the
clients' ``input_spec``, ``tff.learning.optimizers`` for the clients and the
server, and a TFF aggregation factory; the pruning and communication options
are keywords spelled as `tffprune.train` spells them. Both compose the same
four roles (`tffprune.learning.composers.compose_round`):

* `build_fedavg` returns a ``tff.learning.templates.LearningProcess``:
  FedAvg clients keep no state, so ``next(state, client_data)`` is all there
  is; with ``method`` and ``sparsity`` each client prunes its trained model
  (Jeurkar et al., 2024) and the server takes pruned entries as 0.
* `build_sub_fedavg` returns a ``tff.templates.IterativeProcess`` whose
  ``next(state, client_inputs, client_data)`` also takes each sampled
  client's own state (`tffprune.fl.messages.ClientInput`) and returns its new
  one (`ClientOutput`) placed at CLIENTS (Vahidian et al., 2021). The caller
  keeps the states by client id: `tffprune.learning.ClientStates` does it
  for a loop of your own, `tffprune.fl.algorithm.FederatedAlgorithm` for
  `tffprune.train`::

      initialize: ( -> LearningAlgorithmState@SERVER)
      next: (<state@SERVER, ClientInput@CLIENTS, dataset@CLIENTS>
             -> RoundOutput<state@SERVER, ClientOutput@CLIENTS, metrics@SERVER>)

  ``state.global_model_weights`` is the list of the model's trainable then
  non-trainable weights. A loop keeps each client's ``ClientOutput.mask`` by
  client id and passes it back as ``ClientInput.mask`` the next time the
  client is sampled (all True the first time), with the pruning step its
  schedule and sparsity give (`ClientStates.inputs`). Masks cross packed,
  eight entries a byte (`tffprune.pruning.packed_masks`: ``pack`` and
  ``unpack``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tffprune.compression.wire import VALUE_FORMATS
from tffprune.fl.client_steps import ClientWorkConfig, Guard
from tffprune.fl.messages import ClientInput, PruningStep
from tffprune.fl.runtime import ensure_runtime
from tffprune.learning.aggregators import build_round_aggregator
from tffprune.learning.client_works import build_pruning_client_work
from tffprune.learning.composers import compose_round
from tffprune.learning.distributors import build_download_distributor
from tffprune.learning.finalizers import build_masked_optimizer_finalizer
from tffprune.pruning.counts import pruning_counts
from tffprune.pruning.packed_masks import pack, packed_size
from tffprune.pruning.policy import PruningPolicy
from tffprune.pruning.schedules import IterativeSchedule, build_schedule

ModelFn = Callable[[], tf.keras.Model]
AggregationFactory = (
    tff.aggregators.WeightedAggregationFactory
    | tff.aggregators.UnweightedAggregationFactory
)

CLIENT_WEIGHTINGS = ("uniform", "num_examples")


def client_input_type(
    trainable_shapes: list[tuple[int, ...]], error_feedback: bool
) -> tff.StructWithPythonType:
    """The TFF type of a `ClientInput` for a model's trainable weights.

    Its masks are packed (`tffprune.pruning.packed_masks`): one uint8 vector
    of ``packed_size(shape)`` bytes per trainable weight.
    """
    count = len(trainable_shapes)
    masks = tff.StructWithPythonType(
        [tff.TensorType(np.uint8, [packed_size(s)]) for s in trainable_shapes], list
    )
    step = tff.StructWithPythonType(
        [
            ("entries", tff.TensorType(np.int32, [count])),
            ("slices", tff.TensorType(np.int32, [count])),
            ("total", tff.TensorType(np.int32)),
            ("early_examples", tff.TensorType(np.int32)),
        ],
        PruningStep,
    )
    files = tff.StructWithPythonType(
        [tff.TensorType(np.str_)] * 2 if error_feedback else [], tuple
    )
    return tff.StructWithPythonType(
        [
            ("mask", masks),
            ("counts", step),
            ("delivered", tff.TensorType(np.bool_)),
            ("residual_files", files),
        ],
        ClientInput,
    )


class SubFedAvgProcess(tff.templates.IterativeProcess):
    """`build_sub_fedavg`'s ``IterativeProcess``, which says how its clients work.

    Args:
        composed: The composed round (`compose_round`).
        client_work: Its client work's record
            (`tffprune.fl.client_steps.ClientWorkConfig`): the pruning method
            and prunable weights, the guards, the encoding.
    """

    def __init__(
        self, composed: tff.templates.IterativeProcess, client_work: ClientWorkConfig
    ) -> None:
        super().__init__(composed.initialize, composed.next)
        self.client_work = client_work
        signature = composed.next.type_signature
        weights = signature.parameter[0].member.global_model_weights
        count = len(signature.parameter[1].member.mask)
        self.trainable_shapes = tuple(tuple(t.shape) for t in list(weights)[:count])


def build_round(
    model_fn: ModelFn,
    input_spec,
    work: ClientWorkConfig,
    *,
    client_optimizer: tff.learning.optimizers.Optimizer,
    server_optimizer: tff.learning.optimizers.Optimizer,
    model_aggregator: AggregationFactory | None = None,
    download_values: str = "float32",
) -> tff.templates.IterativeProcess:
    """The composed round for any client work settings (both builders use it).

    Args:
        model_fn: Builds a new Keras classification model (no arguments).
        input_spec: The element spec of the clients' batched datasets.
        work: The client work's settings; ``work.upload.masked`` makes it
            Sub-FedAvg (each client its own subnetwork, the masked mean).
        client_optimizer: The local optimizer.
        server_optimizer: The server's optimizer.
        model_aggregator: The aggregation factory (default: the masked mean
            or TFF's ``MeanFactory``; `build_round_aggregator`).
        download_values: The download's value format.

    Returns:
        The `compose_round` process.
    """
    # Computations run on a worker tffprune owns and stops at exit, never on
    # TFF's import-time default one (left running, it holds the caller's
    # output open after the interpreter exits).
    ensure_runtime()
    reference = model_fn()
    trainable = [tuple(w.shape) for w in reference.trainable_weights]
    shapes = trainable + [tuple(w.shape) for w in reference.non_trainable_weights]
    weights_type = tff.StructWithPythonType(
        [tff.TensorType(np.float32, s) for s in shapes], list
    )
    inputs_type = client_input_type(trainable, work.encoding.error_feedback)
    dataset_type = tff.SequenceType(tff.types.tensorflow_to_type(input_spec))

    @tff.tensorflow.computation()
    def initial_weights():
        model = model_fn()
        return [
            tf.identity(w)
            for w in model.trainable_weights + model.non_trainable_weights
        ]

    distributor = build_download_distributor(
        weights_type, inputs_type, download_values, personal=work.upload.masked
    )
    client_work = build_pruning_client_work(
        model_fn,
        client_optimizer,
        work,
        distributor.next.type_signature.result.result.member,
        inputs_type,
        dataset_type,
    )
    upload_type = client_work.next.type_signature.result.result.member[0]
    aggregator = build_round_aggregator(
        model_aggregator, upload_type, masked=work.upload.masked
    )
    finalizer = build_masked_optimizer_finalizer(
        server_optimizer,
        weights_type,
        aggregator.next.type_signature.result.result.member,
        len(trainable),
    )
    composed = compose_round(
        initial_weights, distributor, client_work, aggregator, finalizer
    )
    # Building a Keras model in a graph (the computations above) swaps its
    # classes' bases to Keras' v1 ones, which breaks every model the caller
    # already holds ("Your Layer or Model is in an invalid state" from
    # evaluate); one eager build swaps them back.
    model_fn()
    return composed


def _round_options(
    client_optimizer_fn, server_optimizer_fn, model_aggregator, download_values
) -> dict:
    """`build_round`'s keywords from a builder's, with the builders' defaults.

    Clients: SGD at 0.05 with momentum 0.5 (`tffprune.train`'s); server:
    ``build_sgdm(1.0)``, the plain (masked) mean.
    """
    return dict(
        client_optimizer=client_optimizer_fn
        or tff.learning.optimizers.build_sgdm(0.05, momentum=0.5),
        server_optimizer=server_optimizer_fn or tff.learning.optimizers.build_sgdm(1.0),
        model_aggregator=model_aggregator,
        download_values=download_values,
    )


def _check_options(upload_values, download_values, client_weighting):
    for name, value in (
        ("upload_values", upload_values),
        ("download_values", download_values),
    ):
        if value not in VALUE_FORMATS:
            raise ValueError(
                f"{name} must be one of {', '.join(VALUE_FORMATS)}, got {value!r}"
            )
    if client_weighting not in CLIENT_WEIGHTINGS:
        raise ValueError(
            f"client_weighting must be one of {', '.join(CLIENT_WEIGHTINGS)}, got "
            f"{client_weighting!r}"
        )


def build_sub_fedavg(
    model_fn: ModelFn,
    input_spec,
    *,
    client_optimizer_fn: tff.learning.optimizers.Optimizer | None = None,
    server_optimizer_fn: tff.learning.optimizers.Optimizer | None = None,
    model_aggregator: AggregationFactory | None = None,
    method: str = "weight",
    upload_values: str = "float32",
    download_values: str = "float32",
    error_feedback: bool = False,
    client_weighting: str = "uniform",
    accuracy_threshold: float = 0.0,
    mask_distance_threshold: float | None = None,
    guards: Sequence[Guard] = (),
    personal_models: bool = False,
    prune_logits: bool = False,
    prune_biases: bool = False,
) -> SubFedAvgProcess:
    """Sub-FedAvg (Vahidian et al., 2021) as a TFF iterative process.

    Each client trains the server's weights at its own mask, prunes by
    ``method`` to the counts its `ClientInput` carries and uploads its update
    and mask; the server averages each entry over the clients that kept it
    and steps with ``server_optimizer_fn`` (signature: module docstring).

    Args:
        model_fn: Builds a new Keras classification model (no arguments).
        input_spec: The element spec of the clients' batched datasets,
            ``(inputs, labels)``.
        client_optimizer_fn: The local optimizer (default SGD 0.05, mom. 0.5).
        server_optimizer_fn: The server's (default ``build_sgdm(1.0)``).
        model_aggregator: A factory over ``(values, masks, weight)`` returning
            ``(means, coverage)`` (default `MaskedMeanFactory`).
        method: The pruning method (`tffprune.pruning.policy.METHODS`).
        upload_values: The update's value format.
        download_values: The download's value format.
        error_feedback: Clients keep what the value format dropped in the
            files their `ClientInput.residual_files` name.
        client_weighting: ``uniform`` (the reference code's) or
            ``num_examples``.
        accuracy_threshold: Keep a new mask only if the pruned model is at
            least this accurate on the client's training data (0: off).
        mask_distance_threshold: Sub-FedAvg's reference rule (None: off).
        guards: Your own rules that may refuse a client's new mask, after
            those two (`tffprune.fl.client_steps.Guard`).
        personal_models: Return each client's own model in its output.
        prune_logits: Prune the logits layer too.
        prune_biases: Prune biases with their kernels.

    Returns:
        The iterative process (a `SubFedAvgProcess`: `ClientStates` reads
        its pruning options from it).

    Raises:
        ValueError: On an unknown value format or weighting.
    """
    _check_options(upload_values, download_values, client_weighting)
    policy = PruningPolicy(prune_logits=prune_logits, prune_biases=prune_biases)
    work = ClientWorkConfig.from_options(
        method,
        tuple(policy.select(model_fn())),
        value_format=upload_values,
        masked_upload=True,
        weight_by_examples=client_weighting == "num_examples",
        accuracy_threshold=accuracy_threshold,
        mask_distance_threshold=mask_distance_threshold,
        guards=tuple(guards),
        error_feedback=error_feedback,
        personal_models=personal_models,
    )
    composed = build_round(
        model_fn,
        input_spec,
        work,
        **_round_options(
            client_optimizer_fn, server_optimizer_fn, model_aggregator, download_values
        ),
    )
    return SubFedAvgProcess(composed, work)


def build_fedavg(
    model_fn: ModelFn,
    input_spec,
    *,
    client_optimizer_fn: tff.learning.optimizers.Optimizer | None = None,
    server_optimizer_fn: tff.learning.optimizers.Optimizer | None = None,
    model_aggregator: AggregationFactory | None = None,
    method: str = "none",
    sparsity: float = 0.0,
    schedule: str = "constant",
    rounds: int = 1,
    structured_share: float = 0.5,
    upload_values: str = "float32",
    download_values: str = "float32",
    client_weighting: str = "num_examples",
    prune_logits: bool = False,
    prune_biases: bool = False,
) -> tff.learning.templates.LearningProcess:
    """FedAvg with pruned uploads as a TFF learning process.

    Each client trains the whole model, prunes it by ``method`` to the
    schedule's sparsity and uploads what survived; the server averages with
    pruned entries as 0 (Jeurkar et al., 2024) and steps with
    ``server_optimizer_fn``. ``method="none"``, ``MeanFactory`` and
    ``build_sgdm(1.0)``: TFF's ``build_weighted_fed_avg``.

    Args:
        model_fn: Builds a new Keras classification model (no arguments).
        input_spec: The element spec of the clients' batched datasets.
        client_optimizer_fn: The local optimizer (default SGD 0.05, mom. 0.5).
        server_optimizer_fn: The server's (default ``build_sgdm(1.0)``).
        model_aggregator: Any TFF factory averaging the models the uploads
            rebuild (default ``MeanFactory``).
        method: The pruning method (``none``: dense uploads).
        sparsity: The target sparsity.
        schedule: ``constant``, or ``polynomial`` over ``rounds``.
        rounds: The rounds the schedule spans (its last sparsity after).
        structured_share: ``hybrid``'s structured share.
        upload_values: The update's value format (no error feedback here).
        download_values: The download's value format.
        client_weighting: ``num_examples`` (TFF's) or ``uniform``.
        prune_logits: Prune the logits layer too.
        prune_biases: Prune biases with their kernels.

    Returns:
        The learning process (``get_model_weights``: ``ModelWeights``).

    Raises:
        ValueError: On an unknown option, or the iterative schedule (per client).
    """
    _check_options(upload_values, download_values, client_weighting)
    reference = model_fn()
    targets = tuple(PruningPolicy(prune_logits, prune_biases).select(reference))
    trainable = [tuple(w.shape) for w in reference.trainable_weights]
    plan = build_schedule(schedule, sparsity, rounds)
    if isinstance(plan, IterativeSchedule):
        raise ValueError(
            "the iterative schedule steps from each client's own sparsity: use "
            "build_sub_fedavg"
        )
    steps = [
        pruning_counts(trainable, targets, method, plan(r), structured_share)
        for r in range(max(rounds, 1))
    ]
    work = ClientWorkConfig.from_options(
        method,
        targets,
        value_format=upload_values,
        masked_upload=False,
        weight_by_examples=client_weighting == "num_examples",
    )
    composed = build_round(
        model_fn,
        input_spec,
        work,
        **_round_options(
            client_optimizer_fn, server_optimizer_fn, model_aggregator, download_values
        ),
    )
    return _as_learning_process(composed, steps, trainable)


def _as_learning_process(
    composed: tff.templates.IterativeProcess,
    steps: list,
    trainable: list[tuple[int, ...]],
) -> tff.learning.templates.LearningProcess:
    """A composed round whose clients keep no state, as a ``LearningProcess``.

    Each round every client gets all-True masks and the schedule's pruning
    step for the round the distributor has counted (``steps[r]``, the last
    one from then on); the clients' outputs are dropped.
    """
    entries = np.stack([s.entries for s in steps]).astype(np.int32)
    slices = np.stack([s.slices for s in steps]).astype(np.int32)
    totals = np.asarray([s.total for s in steps], np.int32)
    state_type = composed.initialize.type_signature.result
    data_type = composed.next.type_signature.parameter[2]
    num_trainable = len(trainable)

    @tff.tensorflow.computation(np.int32)
    def client_input(rounds_done):
        row = tf.minimum(rounds_done, len(steps) - 1)
        return ClientInput(
            mask=[tf.constant(pack(np.ones(s, bool))) for s in trainable],
            counts=PruningStep(
                tf.gather(entries, row),
                tf.gather(slices, row),
                tf.gather(totals, row),
                tf.constant(0, tf.int32),
            ),
            delivered=tf.constant(True),
            residual_files=(),
        )

    @tff.federated_computation(state_type, data_type)
    def next_fn(state, client_data):
        inputs = tff.federated_broadcast(
            tff.federated_map(client_input, state.distributor)
        )
        output = composed.next(state, inputs, client_data)
        return tff.learning.templates.LearningProcessOutput(
            output.state, output.metrics
        )

    @tff.tensorflow.computation(state_type.member)
    def get_model_weights(state):
        weights = list(state.global_model_weights)
        return tff.learning.models.ModelWeights(
            trainable=weights[:num_trainable], non_trainable=weights[num_trainable:]
        )

    @tff.tensorflow.computation(
        state_type.member, get_model_weights.type_signature.result
    )
    def set_model_weights(state, model_weights):
        return tff.learning.templates.LearningAlgorithmState(
            global_model_weights=list(model_weights.trainable)
            + list(model_weights.non_trainable),
            distributor=state.distributor,
            client_work=state.client_work,
            aggregator=state.aggregator,
            finalizer=state.finalizer,
        )

    return tff.learning.templates.LearningProcess(
        composed.initialize, next_fn, get_model_weights, set_model_weights
    )

"""The finalize role: the server's step with a TFF optimizer, where covered.

`build_masked_optimizer_finalizer` makes a ``tff.learning.templates.
FinalizerProcess``. The aggregator hands it, per weight, the mean ``x`` of
what the clients' uploads reconstruct and its coverage ``c``
(`tffprune.learning.aggregators`); the pseudo-gradient is ``w - x`` (TFF's
sign) and the server optimizer's state (momentum, Adam's moments) is the
finalizer's::

    trainable:      state, w* = optimizer.next(state, w, where(c > 0, w - x, 0))
                    w'        = where(c > 0, w*, w)
    non-trainable:  w'        = where(c > 0, x, w)       (the clients' mean)

An entry no client's subnetwork kept (``c = 0``) keeps its value, as
Sub-FedAvg asks, whatever the optimizer's moments say. With TFF's
``build_sgdm(1.0)`` this is ``w' = w - (w - x) = x`` where covered: FedAvg,
and Sub-FedAvg's masked mean (an entry every FedAvg client dropped, ``x = 0``,
becomes exactly 0). It is TFF's ``build_apply_optimizer_finalizer`` plus
coverage and the buffers.
"""

from __future__ import annotations

import collections

import tensorflow as tf
import tensorflow_federated as tff


def build_masked_optimizer_finalizer(
    optimizer: tff.learning.optimizers.Optimizer,
    weights_type: tff.Type,
    aggregate_type: tff.Type,
    num_trainable: int,
) -> tff.learning.templates.FinalizerProcess:
    """The finalizer of a round.

    Args:
        optimizer: The server optimizer.
        weights_type: The server weights' type (trainable then non-trainable).
        aggregate_type: The aggregator's result, ``(means, coverage)``: per
            weight the mean of what the uploads reconstruct.
        num_trainable: How many of the weights are trainable (optimized).

    Returns:
        A finalizer whose state is the optimizer's and whose measurements
        are ``update_norm``, the global L2 norm of the pseudo-gradient.
    """
    specs = [
        tf.TensorSpec(t.shape, t.dtype) for t in list(weights_type)[:num_trainable]
    ]

    @tff.tensorflow.computation()
    def initial_state():
        return optimizer.initialize(specs)

    state_type = initial_state.type_signature.result

    @tff.tensorflow.computation(state_type, weights_type, aggregate_type)
    def apply(state, weights, aggregate):
        means, coverage = aggregate
        weights, covered = list(weights), [c > 0 for c in coverage]
        trainable, covered_trainable = weights[:num_trainable], covered[:num_trainable]
        gradients = [
            tf.where(c, w - x, tf.zeros_like(w))
            for c, w, x in zip(
                covered_trainable, trainable, means[:num_trainable], strict=True
            )
        ]
        state, stepped = optimizer.next(state, trainable, gradients)
        new_weights = [
            tf.where(c, s, w)
            for c, s, w in zip(covered_trainable, stepped, trainable, strict=True)
        ] + [
            tf.where(c, x, w)
            for c, x, w in zip(
                covered[num_trainable:],
                means[num_trainable:],
                weights[num_trainable:],
                strict=True,
            )
        ]
        measurements = collections.OrderedDict(
            update_norm=tf.linalg.global_norm(gradients)
        )
        return state, new_weights, measurements

    initialize, next_fn = server_step(
        initial_state, apply, weights_type, aggregate_type
    )
    return tff.learning.templates.FinalizerProcess(initialize, next_fn)


def server_step(
    initial_state: tff.Computation,
    apply: tff.Computation,
    weights_type: tff.Type,
    aggregate_type: tff.Type,
) -> tuple[tff.Computation, tff.Computation]:
    """The federated ``initialize`` and ``next`` of a role that steps at SERVER.

    Args:
        initial_state: A no-argument TF computation: the role's first state.
        apply: A TF computation ``(state, weights, aggregate) -> (state, new
            weights, measurements)``.
        weights_type: The server weights' type.
        aggregate_type: The aggregator's result's type.

    Returns:
        ``initialize() -> state@SERVER`` and ``next(state, weights@SERVER,
        aggregate@SERVER) -> MeasuredProcessOutput``, for a finalizer.
    """

    @tff.federated_computation()
    def initialize():
        return tff.federated_eval(initial_state, tff.SERVER)

    @tff.federated_computation(
        initialize.type_signature.result,
        tff.FederatedType(weights_type, tff.SERVER),
        tff.FederatedType(aggregate_type, tff.SERVER),
    )
    def next_fn(state, weights, aggregate):
        applied = tff.federated_map(apply, (state, weights, aggregate))
        return tff.templates.MeasuredProcessOutput(
            state=applied[0], result=applied[1], measurements=applied[2]
        )

    return initialize, next_fn

"""One place where a round's four roles are composed into a TFF process.

`compose_round` is TFF's ``tff.learning.templates.compose_learning_process``
with the one thing TFF's templates lack: each sampled client's own state
goes in and its new state comes out (Sub-FedAvg's personal masks)::

       SERVER                                    CLIENTS (k = 1..K sampled)
    state.global_model_weights w                 inputs_k: mask m_k, pruning
         │                                       step, residual files
         ├──── distributor ─────────────────────► download_k: w at m_k, in the
         │                                        download's value format
         │                                        │ client work: train under
         │                                        │ m_k, prune -> m_k', encode
         │                                        ▼ the update (error feedback)
         │◄─── aggregator ◄─── uploads (-s_k at m_k', m_k', weight_k)
         │     (means d, coverage c)              outputs_k: m_k', costs ────► caller
         ▼
    finalizer: w' = server optimizer step on d where c > 0, else w

Each role is a ``tff.templates.MeasuredProcess`` with its own state (kept
in a ``tff.learning.templates.LearningAlgorithmState``) and measurements
(one entry each in the round's metrics). A variant swaps one role: FedProx
is another client work, a robust mean another aggregator, FedAdam another
server optimizer in the finalizer.
"""

from __future__ import annotations

import collections
from typing import Any, NamedTuple

import tensorflow_federated as tff


class RoundOutput(NamedTuple):
    """What a composed round's ``next`` returns.

    Attributes:
        state: The new server state (``LearningAlgorithmState``).
        clients: Per sampled client, its `tffprune.fl.messages.ClientOutput`
            (placed at CLIENTS: it goes back to the caller, who keeps it by
            client id).
        metrics: Per role, its measurements.
    """

    state: Any
    clients: Any
    metrics: Any


def compose_round(
    initial_weights_fn: tff.Computation,
    distributor: tff.templates.MeasuredProcess,
    client_work: tff.templates.MeasuredProcess,
    aggregator: tff.templates.AggregationProcess,
    finalizer: tff.learning.templates.FinalizerProcess,
) -> tff.templates.IterativeProcess:
    """Composes the four roles into one round.

    Args:
        initial_weights_fn: A no-argument ``tff.Computation`` returning the
            initial (unplaced) server weights.
        distributor: ``next(state, weights@SERVER, inputs@CLIENTS) -> result
            download@CLIENTS`` (`tffprune.learning.distributors`).
        client_work: ``next(state, download@CLIENTS, inputs@CLIENTS,
            data@CLIENTS) -> result (upload, output)@CLIENTS``
            (`tffprune.learning.client_works`).
        aggregator: ``next(state, upload@CLIENTS) -> result (means,
            coverage)@SERVER`` (`tffprune.learning.aggregators`).
        finalizer: ``next(state, weights@SERVER, (means, coverage)@SERVER)
            -> result weights@SERVER`` (`tffprune.learning.finalizers`).

    Returns:
        An iterative process: ``initialize() -> LearningAlgorithmState@SERVER``
        and ``next(state, inputs@CLIENTS, data@CLIENTS) -> RoundOutput``.

    Raises:
        TypeError: If the roles' types do not chain.
    """
    inputs_type = distributor.next.type_signature.parameter[2]
    data_type = client_work.next.type_signature.parameter[3]
    _check_chain(initial_weights_fn, distributor, client_work, aggregator, finalizer)
    initialize = _initialize(
        initial_weights_fn, distributor, client_work, aggregator, finalizer
    )

    @tff.federated_computation(initialize.type_signature.result, inputs_type, data_type)
    def next_fn(state, inputs, data):
        distributed = distributor.next(
            state.distributor, state.global_model_weights, inputs
        )
        worked = client_work.next(state.client_work, distributed.result, inputs, data)
        # Selections, not TensorFlow computations that return a part: those
        # copied every client's upload and output, which the TFF worker then
        # held for the whole round (fc, 20 clients: 4.0 GiB -> 2.8 GiB).
        aggregated = aggregator.next(state.aggregator, worked.result[0])
        finalized = finalizer.next(
            state.finalizer, state.global_model_weights, aggregated.result
        )
        new_state = tff.federated_zip(
            tff.learning.templates.LearningAlgorithmState(
                finalized.result,
                distributed.state,
                worked.state,
                aggregated.state,
                finalized.state,
            )
        )
        metrics = tff.federated_zip(
            collections.OrderedDict(
                distributor=distributed.measurements,
                client_work=worked.measurements,
                aggregator=aggregated.measurements,
                finalizer=finalized.measurements,
            )
        )
        return RoundOutput(new_state, worked.result[1], metrics)

    return tff.templates.IterativeProcess(initialize, next_fn)


def _initialize(initial_weights_fn, *roles) -> tff.Computation:
    """The composed state's initialization: the weights, then each role's."""

    @tff.federated_computation()
    def initialize():
        weights = tff.federated_eval(initial_weights_fn, tff.SERVER)
        return tff.federated_zip(
            tff.learning.templates.LearningAlgorithmState(
                weights, *(role.initialize() for role in roles)
            )
        )

    return initialize


def _check_chain(initial_weights_fn, distributor, client_work, aggregator, finalizer):
    """Raises TypeError, naming both roles, where one's output cannot feed the next."""
    weights_type = tff.FederatedType(
        initial_weights_fn.type_signature.result, tff.SERVER
    )
    distributor_type = distributor.next.type_signature
    work_type = client_work.next.type_signature
    aggregator_type = aggregator.next.type_signature
    finalizer_type = finalizer.next.type_signature
    work_result = work_type.result.result.member
    links = [
        ("initial weights", "distributor", distributor_type.parameter[1], weights_type),
        (
            "distributor",
            "client work",
            work_type.parameter[1],
            distributor_type.result.result,
        ),
        (
            "distributor",
            "client work (client inputs)",
            work_type.parameter[2],
            distributor_type.parameter[2],
        ),
        (
            "client work",
            "aggregator",
            aggregator_type.parameter[1].member,
            work_result[0],
        ),
        (
            "aggregator",
            "finalizer",
            finalizer_type.parameter[2],
            aggregator_type.result.result,
        ),
        ("finalizer", "the next round", weights_type, finalizer_type.result.result),
    ]
    for source, target, expected, given in links:
        if not expected.is_assignable_from(given):
            raise TypeError(
                f"the {source}'s output does not fit the {target}: it gives "
                f"{given}, which takes {expected}"
            )

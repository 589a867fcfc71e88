"""Sub-FedAvg clients' own state, kept by client id, for a loop of your own.

`build_sub_fedavg`'s ``next(state, client_inputs, client_data)`` takes each
sampled client's state (`ClientInput`) and returns its new one
(`ClientOutput`); TFF keeps neither between rounds. `ClientStates` is the
loop's side of that contract (NumPy arrays)::

    process = build_sub_fedavg(model_fn, input_spec, method="weight")
    clients = ClientStates(process, sparsity=0.5, schedule="iterative")
    for round_number in range(rounds):
        ids = sample(...)
        output = process.next(state, clients.inputs(ids, round_number),
                              [data_for(c) for c in ids])
        state = output.state
        clients.update(ids, output.clients)

A client first sampled trains the whole model (all-True masks); each round
it is sampled it gets its pruning step (`PruningStep`) from the schedule and
its own sparsity, and with error feedback the files of its residual. Its new
mask is kept only if its upload was aggregated (finite, delivered), as the
server took it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np
import tensorflow_federated as tff

from tffprune.fl.algorithm import ClientState, PruningPlan
from tffprune.fl.messages import ClientInput, ClientOutput
from tffprune.fl.residual_store import ResidualStore
from tffprune.learning.algorithms import SubFedAvgProcess
from tffprune.pruning.packed_masks import PackedMasks
from tffprune.pruning.policy import sparsity_report
from tffprune.pruning.schedules import build_schedule
from tffprune.reporting.files import file_stem

__all__ = ["ClientStates"]


class ClientStates:
    """Each client's mask, sparsity and residual file, by client id.

    The pruning method, the prunable weights, error feedback and the
    mask-distance rule are the process's (``process.client_work``, as
    `build_sub_fedavg` was given them); the schedule is this object's alone.

    Args:
        process: The process `build_sub_fedavg` returned.
        sparsity: The target sparsity of the prunable kernels.
        schedule: ``constant``, ``polynomial`` (over ``rounds``) or
            ``iterative`` (Sub-FedAvg's: 10% of each client's survivors per
            round it is sampled, until the target).
        rounds: The rounds a ``polynomial`` schedule spans.
        structured_share: ``hybrid``'s structured share.
        residual_dir: Where the residual files go, with error feedback
            (default: a temporary directory, removed with this object).

    Raises:
        TypeError: If ``process`` is not a `SubFedAvgProcess`.
    """

    def __init__(
        self,
        process: SubFedAvgProcess,
        *,
        sparsity: float = 0.5,
        schedule: str = "iterative",
        rounds: int = 1,
        structured_share: float = 0.5,
        residual_dir: str | Path | None = None,
    ) -> None:
        if not isinstance(process, SubFedAvgProcess):
            raise TypeError(
                "ClientStates takes the process build_sub_fedavg returned, got "
                f"{type(process).__name__}"
            )
        self.plan = PruningPlan(
            process.client_work,
            build_schedule(schedule, sparsity, rounds),
            process.trainable_shapes,
            structured_share,
        )
        self.residuals = ResidualStore(residual_dir)
        self._states: dict[Hashable, ClientState] = {}
        self._pending: dict[Hashable, str] = {}

    def __contains__(self, client_id: Hashable) -> bool:
        return client_id in self._states

    def __len__(self) -> int:
        return len(self._states)

    def state(self, client_id: Hashable) -> ClientState:
        """The client's state (a new one, all kept, if never seen)."""
        return self._states.get(client_id, ClientState())

    def mask(self, client_id: Hashable) -> Sequence[np.ndarray]:
        """The client's masks, one per trainable weight (all True if new).

        A client's masks are kept packed (`PackedMasks`): each is unpacked,
        read-only, when read.
        """
        held = self.state(client_id).mask
        return (
            held if held is not None else [np.ones(s, bool) for s in self.plan.shapes]
        )

    def subnetwork(
        self, client_id: Hashable, weights: Sequence[np.ndarray]
    ) -> tff.learning.models.ModelWeights:
        """The client's subnetwork of ``weights``: its personalized model.

        Args:
            client_id: The client.
            weights: The server's weights, trainable then non-trainable
                (``state.global_model_weights``).

        Returns:
            The trainable weights at 0 where its mask pruned them and the
            non-trainable ones unchanged (``.assign_weights_to(model)``).
        """
        weights = [np.asarray(w) for w in weights]
        masks = self.mask(client_id)
        return tff.learning.models.ModelWeights(
            trainable=[
                np.where(m, w, 0).astype(w.dtype)
                for w, m in zip(weights, masks, strict=False)
            ],
            non_trainable=weights[len(masks) :],
        )

    def sparsity(self, client_id: Hashable) -> float:
        """The sparsity of the client's prunable kernels (0 if new)."""
        return self.state(client_id).sparsity

    def inputs(
        self,
        client_ids: Sequence[Hashable],
        round_number: int,
        epoch_examples: Sequence[int] | None = None,
        delivered: Sequence[bool] | None = None,
    ) -> list[ClientInput]:
        """The sampled clients' `ClientInput`s for ``next``, in order.

        Args:
            client_ids: The sampled clients (distinct).
            round_number: The round, from 0 (the schedule's clock).
            epoch_examples: Per client, its examples in one local epoch
                (needed by the mask-distance rule, else ignored).
            delivered: Per client, False to simulate its upload being lost.

        Raises:
            ValueError: On repeated ids, or the mask-distance rule without
                ``epoch_examples``.
        """
        if len(set(client_ids)) != len(client_ids):
            raise ValueError("a client is sampled at most once per round")
        new = {}
        if self.plan.work.encoding.error_feedback:
            new = {
                c: f"{file_stem(c)}_r{int(round_number)}.residual" for c in client_ids
            }
        inputs = self.plan.client_inputs(
            round_number,
            [self.state(c) for c in client_ids],
            [self.mask(c) for c in client_ids],
            epoch_examples,
            [True] * len(client_ids) if delivered is None else delivered,
            [
                (
                    self.residuals.path(self.state(c).residual),
                    self.residuals.path(new[c]),
                )
                if new
                else ()
                for c in client_ids
            ],
        )
        self._pending.update(new)  # once the inputs are made
        return inputs

    def update(
        self,
        client_ids: Sequence[Hashable],
        outputs: Sequence[ClientOutput],
        delivered: Sequence[bool] | None = None,
    ) -> list[bool]:
        """Records the round's `ClientOutput`s (``output.clients``).

        A client's new mask, sparsity and residual are kept only if its
        upload was aggregated: its training stayed finite and (with
        ``delivered``, as given to `inputs`) it arrived.

        Returns:
            Per client, whether its upload was aggregated.
        """
        delivered = [True] * len(client_ids) if delivered is None else delivered
        aggregated = []
        for client_id, output, arrived in zip(
            client_ids, outputs, delivered, strict=True
        ):
            kept = bool(arrived) and bool(output.finite)
            aggregated.append(kept)
            pending = self._pending.pop(client_id, None)
            if not kept:
                if pending is not None:
                    Path(self.residuals.path(pending)).unlink(missing_ok=True)
                continue
            old, residual = self.state(client_id), None
            if pending is not None and bool(output.residual_written):
                residual = pending
                if old.residual:
                    Path(self.residuals.path(old.residual)).unlink(missing_ok=True)
            masks = PackedMasks(output.mask, self.plan.shapes)  # kept packed
            self._states[client_id] = old.after_round(
                True,
                masks,
                sparsity_report(masks, self.plan.targets).prunable_sparsity,
                residual,
            )
        return aggregated

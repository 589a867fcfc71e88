"""Pruned FedAvg and Sub-FedAvg as ``init`` / ``apply`` over explicit state.

The algorithm's state (FedJAX's ``fed_avg.py`` shape) is

* `ServerState`: the server weights and the round's role states;
* one `ClientState` per client, sampled or not: its personal mask (Sub-FedAvg
  keeps it across rounds), the name of its error-feedback residual's file
  (`tffprune.fl.residual_store`), its sparsity and how often it took part.

`FederatedAlgorithm.apply` runs one round for the sampled clients: it
distributes each client's mask and pruning counts (the schedule's decision for
that client this round), runs the round's single TFF computation
(`tffprune.fl.process.RoundProcess`, injected so this module needs no TFF),
and returns the new state with what each client cost. Sampling, evaluation,
checkpoints and files belong to the driver (`tffprune.fl.training`).

Algorithms (``aggregation`` x ``method``):

* ``fedavg`` + ``none``: dense FedAvg (equals TFF's ``build_weighted_fed_avg``).
* ``fedavg`` + a pruning method (Jeurkar et al., 2024): each client trains the
  dense global model, prunes it, uploads the survivors; the server takes the
  weighted mean with pruned entries as 0.
* ``subfedavg`` (Vahidian et al., 2021; Singh & Raj, 2023): each client starts
  from the global weights times its own mask, trains with pruned weights held
  at zero, prunes further by its schedule (optionally guarded by its
  accuracy) and uploads values and mask; the server averages each entry over
  the clients that kept it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from tffprune.compression import accounting, mask_facts, wire
from tffprune.compression.compact import CompactTensors
from tffprune.compression.mask_facts import MaskFacts
from tffprune.fl.client_steps import ClientWorkConfig
from tffprune.fl.messages import ClientInput
from tffprune.fl.residual_store import ResidualStore
from tffprune.fl.verification import SentUpload, verify_round
from tffprune.pruning.counts import PruningCounts, no_pruning, pruning_counts
from tffprune.pruning.packed_masks import PackedMasks, pack_all, union
from tffprune.pruning.policy import PrunableWeight, build_masks, sparsity_report_of
from tffprune.pruning.schedules import IterativeSchedule, Schedule


@dataclasses.dataclass
class ServerState:
    """What the server keeps between rounds.

    Attributes:
        weights: All weights (trainable then non-trainable).
        roles: The states of the round's roles, ``(distributor, client_work,
            aggregator, finalizer)`` (the server optimizer's moments are the
            finalizer's).
        held_downloads: Per round, the download that clients sampled in it
            still hold, where the algorithm codes a returning client's next
            download against it (FedPM: the probabilities' value table,
            `tffprune.compression.dictionary.ValueTable`); empty otherwise.
    """

    weights: list[np.ndarray]
    roles: tuple = ()
    held_downloads: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ClientState:
    """What a client keeps between rounds (Sub-FedAvg's personal state).

    Attributes:
        mask: One boolean mask per trainable weight, kept packed (a
            `PackedMasks`; a list given is packed); ``None`` until the
            client first prunes (all kept).
        sparsity: Sparsity of its prunable kernels in its last upload.
        rounds_participated: Rounds whose upload the server aggregated.
        residual: With error feedback, the name of the file (in the
            algorithm's `ResidualStore`) holding what its value format dropped
            from its last aggregated upload; ``None`` before its first.
        personal_model: Its own model after its last aggregated round's
            training and pruning (every weight, kept at its mask), with
            ``personal_models``; ``None`` before.
        upload_bytes: Bytes it uploaded over the run (aggregated uploads).
        download_bytes: Bytes it downloaded over the run (every time sampled).
        downloaded_round: With FedPM, the last round it downloaded (was
            sampled in): it holds that round's probabilities
            (`ServerState.held_downloads`); None before its first.
    """

    mask: PackedMasks | None = None
    sparsity: float = 0.0
    rounds_participated: int = 0
    residual: str | None = None
    personal_model: CompactTensors | None = None
    upload_bytes: int = 0
    download_bytes: int = 0
    downloaded_round: int | None = None

    def __post_init__(self) -> None:
        if self.mask is not None:
            self.mask = PackedMasks.of(self.mask)

    def after_round(
        self,
        aggregated: bool,
        mask: Sequence[np.ndarray] | None,
        sparsity: float,
        residual: str | None = None,
        personal_model: CompactTensors | None = None,
        upload_bytes: int = 0,
        download_bytes: int = 0,
        downloaded_round: int | None = None,
    ) -> ClientState:
        """Its state after a round it was sampled in (a new one).

        It always counts what it downloaded (and with ``downloaded_round``
        holds that round's download); only an aggregated upload changes what
        it holds, as the server took it: its mask (None: keep the one it has,
        a FedAvg client's), sparsity, rounds, residual and own model (None:
        keep).
        """
        downloaded = dataclasses.replace(
            self,
            download_bytes=self.download_bytes + download_bytes,
            downloaded_round=self.downloaded_round
            if downloaded_round is None
            else downloaded_round,
        )
        if not aggregated:
            return downloaded
        return dataclasses.replace(
            downloaded,
            mask=self.mask if mask is None else mask,
            sparsity=sparsity,
            rounds_participated=self.rounds_participated + 1,
            residual=self.residual if residual is None else residual,
            personal_model=self.personal_model
            if personal_model is None
            else personal_model,
            upload_bytes=self.upload_bytes + upload_bytes,
        )


@dataclasses.dataclass
class ClientResult:
    """What one sampled client did in a round.

    Attributes:
        client: Its index.
        status: ``aggregated``, ``dropped`` (its upload never arrived) or
            ``rejected``.
        reason: Why it was rejected (empty otherwise).
        upload_bytes: Exact size of its encoded upload (0 unless aggregated).
        download_bytes: Exact size of what it received from the server.
        download_bytes_csr: The same message as SciPy CSR matrices
            (Jeurkar et al.'s format, both directions).
        download_bound_bits: The information bound of what it received
            (`tffprune.compression.baselines.information_bound_bits`).
        upload_bound_bits: The information bound of its upload (FedPM's;
            the others' is computed from ``facts``).
        facts: Per weight it uploaded, its mask's facts, flips against the
            mask the server held (`tffprune.compression.mask_facts`; None
            unless aggregated).
        sparsity: Sparsity of its prunable kernels after the round.
        mean_loss: Its mean training loss.
        mask_distance: The mask-distance rule's distance between its early
            and final candidate masks (None when the rule did not apply).
    """

    client: int
    status: str
    reason: str = ""
    upload_bytes: int = 0
    download_bytes: int = 0
    download_bytes_csr: int = 0
    download_bound_bits: float = 0.0
    upload_bound_bits: float = 0.0
    facts: list[MaskFacts] | None = None
    sparsity: float = 0.0
    mean_loss: float = float("nan")
    mask_distance: float | None = None


@dataclasses.dataclass(frozen=True)
class PruningPlan:
    """Which counts a client prunes to in a round: the schedule, per client.

    The method, the prunable kernels, whether masks are personal and the
    mask-distance rule are the client work's (`ClientWorkConfig`, held there
    once); the plan reads them from ``work``.

    Attributes:
        work: The client work's settings.
        schedule: Sparsity per round (``IterativeSchedule``: per step).
        shapes: Shapes of the trainable weights.
        structured_share: ``hybrid``'s structured share.
        new_clients: What a Sub-FedAvg client seen for the first time starts
            from: ``dense`` (the whole model, the reference code's way) or
            ``subnetwork`` (the server's current subnetwork at the round's
            target, `subnetwork`: positions and values, a fraction of the
            bytes).
    """

    work: ClientWorkConfig
    schedule: Schedule
    shapes: tuple[tuple[int, ...], ...]
    structured_share: float = 0.5
    new_clients: str = "dense"

    @property
    def method(self) -> str:
        """The pruning method."""
        return self.work.pruning.method

    @property
    def targets(self) -> tuple[PrunableWeight, ...]:
        """The prunable kernels."""
        return self.work.pruning.targets

    @property
    def personal(self) -> bool:
        """Masks persist per client (Sub-FedAvg's masked upload).

        A client then prunes only above its own sparsity, and an iterative
        schedule steps from it.
        """
        return self.work.upload.masked

    @property
    def early_examples_needed(self) -> bool:
        """A client that prunes needs its examples per local epoch.

        A guard (Sub-FedAvg's mask-distance rule) draws an early candidate
        mask after the client's first local epoch.
        """
        return self.work.early_snapshot

    def subnetwork(
        self,
        weights: Sequence[np.ndarray],
        clients: Sequence[ClientState],
        sparsity: float,
    ) -> list[np.ndarray]:
        """The server's subnetwork at ``sparsity``: masks of the trainable weights.

        Entries no client's subnetwork holds go first (Sub-FedAvg), then the
        method's rule on the server weights (`pruning.policy.build_masks`).
        """
        trainable = list(weights[: len(self.shapes)])
        if sparsity == 0.0:
            return [np.ones(s, bool) for s in self.shapes]
        held = [
            PackedMasks.of(c.mask)
            for c in (clients if self.personal else ())
            if c.mask is not None
        ]
        return build_masks(
            trainable,
            self.targets,
            self.method,
            sparsity,
            masks=union(held) if held else None,
            structured_share=self.structured_share,
        )

    def target_sparsity(self, round_number: int, client: ClientState) -> float:
        """The sparsity ``client`` prunes to in round ``round_number`` (from 0)."""
        if self.method == "none":
            return 0.0
        if isinstance(self.schedule, IterativeSchedule) and self.personal:
            return self.schedule.next_sparsity(client.sparsity)
        return float(self.schedule(round_number))

    def counts(
        self, round_number: int, client: ClientState, epoch_examples: int = 0
    ) -> PruningCounts:
        """The client's `PruningCounts` this round (all 0: its mask stays).

        Args:
            round_number: The round, from 0.
            client: The client's state.
            epoch_examples: Its examples in one local epoch: with the
                mask-distance rule, when its early candidate mask is drawn.
        """
        target = self.target_sparsity(round_number, client)
        if target == 0.0 or (self.personal and target <= client.sparsity):
            return no_pruning(len(self.shapes))
        counts = pruning_counts(
            self.shapes, self.targets, self.method, target, self.structured_share
        )
        if not self.early_examples_needed or not counts.prunes:
            return counts
        return dataclasses.replace(counts, early_examples=epoch_examples)

    def client_inputs(
        self,
        round_number: int,
        clients: Sequence[ClientState],
        masks: Sequence[Sequence[np.ndarray]],
        epoch_examples: Sequence[int] | None,
        delivered: Sequence[bool],
        residual_files: Sequence[tuple],
    ) -> list[ClientInput]:
        """The sampled clients' `ClientInput`s: mask, this round's step, files.

        The masks go packed, eight entries a byte (`pruning.packed_masks`).

        Args:
            round_number: The round, from 0.
            clients: The sampled clients' states.
            masks: Per client, the masks it trains under
                (`FederatedAlgorithm.start_masks`).
            epoch_examples: Per client, its examples in one local epoch (the
                mask-distance rule's early candidate; `counts`).
            delivered: Per client, False if its upload is to be lost.
            residual_files: Per client, with error feedback its residual's two
                files, else ``()``.

        Raises:
            ValueError: If the mask-distance rule needs ``epoch_examples`` and
                none are given.
        """
        if epoch_examples is None:
            if self.early_examples_needed:
                raise ValueError(
                    "the mask-distance rule needs epoch_examples (each client's "
                    "examples in one local epoch)"
                )
            epoch_examples = [0] * len(clients)
        return [
            ClientInput(
                mask=pack_all(mask),
                counts=self.counts(round_number, client, int(examples)).as_tensors(),
                delivered=np.bool_(arrived),
                residual_files=tuple(files),
            )
            for client, mask, examples, arrived, files in zip(
                clients, masks, epoch_examples, delivered, residual_files, strict=True
            )
        ]


class FederatedAlgorithm:
    """One round of pruned FedAvg / Sub-FedAvg over explicit state.

    The update's value format, its verification and error feedback are the
    client work's (``plan.work``); the positions' format and the download's
    value format are the distributor's (`tffprune.compression.wire`).

    Args:
        process: The round computation (`tffprune.fl.process.RoundProcess`
            or anything with its ``initialize_roles`` and ``next``).
        plan: The clients' pruning schedule and client work.
        shapes: Shapes of all weights (trainable then non-trainable).
        positions: ``auto``, ``bitmap`` or ``gaps``.
        download_values: The value format of what the server sends down.
        residuals: Where clients keep their error-feedback residuals (default:
            a temporary directory).
    """

    def __init__(
        self,
        process,
        plan: PruningPlan,
        shapes: Sequence[tuple[int, ...]],
        positions: str = "auto",
        download_values: str = "float32",
        residuals: ResidualStore | None = None,
    ) -> None:
        self.process = process
        self.plan = plan
        self.work = plan.work
        self.positions = positions
        self.download_values = download_values
        self.shapes = [tuple(s) for s in shapes]
        self.num_trainable = len(plan.shapes)
        self.residuals = residuals or ResidualStore()
        self._all_kept: PackedMasks | None = None

    def initialize_roles(self) -> tuple:
        """The roles' initial states (a checkpoint's are packed into them)."""
        return self.process.initialize_roles()

    def model_weights(self, weights: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The model the server's weights stand for: themselves."""
        return list(weights)

    def init(self, weights: Sequence[np.ndarray]) -> ServerState:
        """The initial server state for these weights."""
        return ServerState(
            [np.asarray(w) for w in weights], self.process.initialize_roles()
        )

    def start_masks(
        self,
        weights: Sequence[np.ndarray],
        clients: Sequence[ClientState],
        sampled: Sequence[int],
        round_number: int,
    ) -> list[Sequence[np.ndarray]]:
        """The masks the sampled clients train under (`distribute`).

        A Sub-FedAvg client that holds a mask trains under it (its
        `PackedMasks`, as kept); one seen for the first time under all-ones
        masks, or with ``new_clients="subnetwork"`` under the server's
        subnetwork at the round's target (computed once a round). FedAvg
        clients: all kept (one `PackedMasks`, packed once a run).
        """
        if self._all_kept is None:
            shapes = self.plan.shapes
            self._all_kept = PackedMasks.of([np.ones(s, bool) for s in shapes])
        ones = self._all_kept
        subnetwork = None
        masks = []
        for index in sampled:
            client = clients[index]
            if not self.plan.personal:
                masks.append(ones)
            elif client.mask is not None:
                masks.append(client.mask)
            elif self.plan.new_clients == "subnetwork":
                if subnetwork is None:
                    subnetwork = self.plan.subnetwork(
                        weights,
                        clients,
                        self.plan.target_sparsity(round_number, ClientState()),
                    )
                masks.append(subnetwork)
            else:
                masks.append(ones)
        return masks

    def download_masks(
        self, weights: Sequence[np.ndarray], start: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """The entries the server sends a client (`distribute`), every weight.

        A Sub-FedAvg client receives the subnetwork it starts from
        (``start``); a FedAvg client the model's nonzeros. Non-trainable
        weights go whole.
        """
        buffers = [np.ones(s, bool) for s in self.shapes[self.num_trainable :]]
        if self.plan.personal:
            masks = start
        else:
            masks = [w != 0 for w in weights[: self.num_trainable]]
        return list(masks) + buffers

    def download_costs(
        self,
        weights: Sequence[np.ndarray],
        start: Sequence[np.ndarray],
        client: ClientState,
    ) -> dict[str, float]:
        """What the server sends a client (`accounting.download_costs`).

        The values of `download_masks`, positions costing nothing where the
        client already holds them (a Sub-FedAvg client's own mask: then only
        its kept entries are counted, on its packed bytes).
        """
        buffers = [mask_facts.whole(s) for s in self.shapes[self.num_trainable :]]
        if self.plan.personal and client.mask is not None and start is client.mask:
            held = client.mask
            trainable = [
                MaskFacts(shape, kept, flips=0)
                for shape, kept in zip(held.shapes, held.kept(), strict=True)
            ]
        else:
            trainable = mask_facts.of_all(
                self.download_masks(weights, start)[: self.num_trainable],
                self.held_masks(client)[: self.num_trainable],
            )
        return accounting.download_costs(
            trainable + buffers, self.download_values, self.positions
        )

    def sent(
        self, weights: Sequence[np.ndarray], start: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """The server's float32 copy of what it sends a client (0 elsewhere).

        The server adds a client's decoded update to this, not to what the
        client decoded (`tffprune.fl.client`).
        """
        return [
            np.where(mask, weight, 0.0).astype(np.float32)
            for weight, mask in zip(
                weights, self.download_masks(weights, start), strict=True
            )
        ]

    def received(
        self, weights: Sequence[np.ndarray], start: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """What a client decodes from its download (the codec's round trip)."""
        received = self.sent(weights, start)
        for value, mask in zip(
            received, self.download_masks(weights, start), strict=True
        ):
            value[mask] = wire.round_trip(value[mask], self.download_values)
        return received

    def held_masks(self, client: ClientState) -> list[np.ndarray | None]:
        """Per weight, the client's mask as both sides already hold it.

        A Sub-FedAvg client and the server both keep the client's mask from
        the last round the server aggregated its upload: positions against it
        cost only what changed (`tffprune.compression.wire`). None elsewhere.
        """
        known = self.plan.personal and client.mask is not None
        held = list(client.mask) if known else [None] * self.num_trainable
        return held + [None] * (len(self.shapes) - self.num_trainable)

    def upload_held(
        self, client: ClientState, start: Sequence[np.ndarray]
    ) -> list[np.ndarray | None]:
        """The masks the server holds when a client's upload arrives.

        Those of `held_masks`, and for a new Sub-FedAvg client the subnetwork
        the server chose for it (``new_clients="subnetwork"``).
        """
        if self.plan.personal and self.plan.new_clients == "subnetwork":
            return list(start) + [None] * (len(self.shapes) - self.num_trainable)
        return self.held_masks(client)

    def upload_facts(
        self, report, client: ClientState, start: Sequence[np.ndarray]
    ) -> list[MaskFacts]:
        """Per weight, the facts of a client's upload's masks (`mask_facts`).

        Counted from its masks, flips against those the server holds for it
        (`upload_held`): the one full-size pass over a client's masks left
        on the driver (20 ms for an fc client; counted in TensorFlow in the
        client's work it cost 57-82 ms, so it stays here).
        """
        held = self.upload_held(client, start)[: self.num_trainable]
        buffers = [mask_facts.whole(s) for s in self.shapes[self.num_trainable :]]
        return mask_facts.of_all(list(report.masks), held) + buffers

    def apply(
        self,
        server: ServerState,
        clients: Sequence[ClientState],
        sampled: Sequence[int],
        round_number: int,
        datasets: Sequence,
        delivered: Sequence[bool],
        epoch_examples: Sequence[int] | None = None,
    ) -> tuple[ServerState, list[ClientState], list[ClientResult], dict]:
        """Runs one round: the new server and client states (a new list).

        Args:
            server: The server state.
            clients: Every client's state (indexed by client).
            sampled: The sampled clients' indices.
            round_number: The round, from 0.
            datasets: Per sampled client, its batched data for this round.
            delivered: Per sampled client, False if its upload is lost.
            epoch_examples: Per sampled client, its examples in one local
                epoch (the mask-distance rule's early candidate; default 0).

        Returns:
            The new server state, every client's new state (those not
            sampled as they were), one `ClientResult` per sampled client and
            the roles' measurements (by role).
        """
        masks = self.start_masks(server.weights, clients, sampled, round_number)
        starts = dict(zip((int(c) for c in sampled), masks, strict=True))
        # A new file for every residual written: the one a checkpoint names
        # is never overwritten.
        new_residuals = {int(c): self.residuals.name(c, round_number) for c in sampled}
        inputs = self._client_inputs(
            clients, starts, new_residuals, round_number, delivered, epoch_examples
        )
        # What the server sent each client, as its float32 copy (before the
        # round changes the clients' states): the verification adds the
        # decoded uploads to it.
        sent = {}
        if self.work.return_values:
            sent = {c: self.sent(server.weights, starts[c]) for c in starts}
        output = self.process.next(server.weights, server.roles, inputs, datasets)
        downloads = self._download_costs(server.weights, clients, starts)
        results, updated = [], list(clients)
        for client, report, arrived in zip(
            sampled, output.reports, delivered, strict=True
        ):
            client = int(client)
            result = self._client_result(
                client,
                report,
                arrived,
                downloads[client],
                clients[client],
                starts[client],
            )
            results.append(result)
            updated[client] = self._updated_client(
                clients[client], result, report, new_residuals[client]
            )
        if self.work.return_values:
            helds = {c: self.upload_held(clients[c], starts[c]) for c in starts}
            self._verify(server.weights, output, results, helds, sent)
        return (
            ServerState(output.weights, output.roles),
            updated,
            results,
            output.measurements,
        )

    def upload_costs(self, aggregated: Sequence[ClientResult]) -> dict[str, float]:
        """The upload columns of a round's row (`accounting.upload_costs`)."""
        return accounting.upload_costs(
            [r.facts for r in aggregated],
            [r.upload_bytes for r in aggregated],
            self.shapes,
            self.work.encoding.value_format,
        )

    def _client_inputs(
        self,
        clients: Sequence[ClientState],
        starts: dict[int, list[np.ndarray]],
        new_residuals: dict[int, str],
        round_number: int,
        delivered: Sequence[bool],
        epoch_examples: Sequence[int] | None,
    ) -> list[ClientInput]:
        """The sampled clients' `ClientInput`s (`PruningPlan.client_inputs`)."""
        files = [
            (
                self.residuals.path(clients[client].residual),
                self.residuals.path(new_residuals[client]),
            )
            if self.work.encoding.error_feedback
            else ()
            for client in starts
        ]
        return self.plan.client_inputs(
            round_number,
            [clients[client] for client in starts],
            list(starts.values()),
            epoch_examples,
            delivered,
            files,
        )

    def _download_costs(
        self,
        weights: Sequence[np.ndarray],
        clients: Sequence[ClientState],
        starts: dict[int, list[np.ndarray]],
    ) -> dict[int, dict[str, float]]:
        """Per sampled client, what its download cost (`download_costs`).

        FedAvg sends every client the same model: its bytes are counted once.
        """
        if not self.plan.personal and starts:
            same = self.download_costs(
                weights, next(iter(starts.values())), ClientState()
            )
            return {client: same for client in starts}
        return {
            client: self.download_costs(weights, start, clients[client])
            for client, start in starts.items()
        }

    def _client_result(
        self,
        client: int,
        report,
        arrived: bool,
        download: dict[str, float],
        state: ClientState,
        start: Sequence[np.ndarray],
    ) -> ClientResult:
        """What one sampled client did, with the exact size of its upload."""
        if not arrived:
            return ClientResult(client, "dropped", **download)
        if not report.finite:
            reason = "update rejected: NaN or Inf values"
            return ClientResult(client, "rejected", reason, **download)
        facts = self.upload_facts(report, state, start)
        counts = [(f.size, f.kept) for f in facts[: self.num_trainable]]
        return ClientResult(
            client,
            "aggregated",
            upload_bytes=wire.encoded_size_of(
                facts,
                self.work.encoding.value_format,
                self.positions,
                report.zero_kept,
            ),
            **download,
            facts=facts,
            sparsity=sparsity_report_of(counts, self.plan.targets).prunable_sparsity,
            mean_loss=report.mean_loss,
            mask_distance=report.mask_distance,
        )

    def _updated_client(
        self, state: ClientState, result: ClientResult, report, residual: str
    ) -> ClientState:
        """A client's state after its round (its mask once aggregated)."""
        return state.after_round(
            result.status == "aggregated",
            report.masks if self.plan.personal else None,
            result.sparsity,
            residual if self.work.encoding.error_feedback else None,
            report.personal,
            result.upload_bytes,
            result.download_bytes,
        )

    def _verify(
        self, weights, output, results: list[ClientResult], helds: dict, sent
    ) -> None:
        """Re-runs the round's upload and aggregation with the real codec.

        Each aggregated client's update (with its residual) is encoded and
        decoded; the server adds what it decodes to its float32 copy of what
        it sent that client (`tffprune.fl.verification`).
        """
        by_examples = self.work.upload.weight_by_examples
        buffers = [np.ones(s, bool) for s in self.shapes[self.num_trainable :]]
        uploads = [
            SentUpload(
                result.client,
                report.values,
                [*report.masks, *buffers],
                helds[result.client],
                result.upload_bytes,
                sent[result.client],
                report.num_examples if by_examples else 1.0,
            )
            for result, report in zip(results, output.reports, strict=True)
            if result.status == "aggregated"
        ]
        verify_round(
            weights,
            output.weights,
            uploads,
            self.work.encoding.value_format,
            self.positions,
            masked=self.plan.personal,
        )

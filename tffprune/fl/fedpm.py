"""FedPM on the driver: the round's bytes, coded for real, and its state.

`FedPMAlgorithm` is `tffprune.fl.algorithm.FederatedAlgorithm`'s
counterpart for ``--aggregation fedpm`` (`tffprune.learning.fedpm`): the
same ``init`` / ``apply`` over explicit state, so the driver
(`tffprune.fl.training`) samples, checkpoints and evaluates a FedPM run as
any other. The server's weights are FedPM's probabilities; the model they
stand for is `model_weights`'.

What each message costs, exactly (`tffprune.compression.accounting`: each
coded for real, decoded and compared with what was sent):

* down: the probabilities at ``probability_bits`` bits each, the same
  message for every client (`accounting.probability_download`). While the
  probabilities are still the seed's first ones a tag byte alone says so:
  the client draws them from the seed, as the server did. A returning client
  holds the probabilities of the round it last downloaded
  (`ClientState.downloaded_round`; the server keeps each such round's value
  table, `ServerState.held_downloads`): it receives, when smaller, the new
  values coded given the ones it holds (`accounting.returning_download`);
* up: the client's sampled mask, range-coded under the probabilities it
  downloaded (`accounting.mask_upload`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tffprune.compression import (
    accounting,
    baselines,
    bernoulli,
    dictionary,
    mask_facts,
)
from tffprune.compression.compact import CompactTensors, at_positions
from tffprune.fl.algorithm import ClientResult, ClientState, ServerState
from tffprune.fl.process import (
    algorithm_state,
    measurements_of,
    run_on_runtime,
    split_state,
)
from tffprune.fl.residual_store import ResidualStore
from tffprune.pruning import probabilistic


class FedPMAlgorithm:
    """One FedPM round over explicit state (`FederatedAlgorithm`'s interface).

    Args:
        process: The `tffprune.learning.fedpm.FedPMProcess`.
        residuals: Unused by FedPM (its clients keep nothing); kept for the
            driver's clean-up, which every algorithm shares.
        personal_models: Keep each client's own network: the seed's weights
            at the mask it sampled and uploaded in its last aggregated round
            (`ClientState.personal_model`, evaluated as ``personal_accuracy``).
    """

    def __init__(
        self,
        process,
        residuals: ResidualStore | None = None,
        personal_models: bool = False,
    ) -> None:
        self.process = process
        self.personal_models = personal_models
        self.shapes = process.shapes
        self.bits = process.download_bits
        self.residuals = residuals or ResidualStore()
        self._frozen: list[np.ndarray] | None = None
        self._first: list[np.ndarray] | None = None
        self._csr: int | None = None

    def initialize_roles(self) -> tuple:
        """The roles' initial states (`tffprune.fl.process.RoundProcess`'s)."""
        return self._initial_state()[1:]

    def _initial_state(self) -> tuple:
        probabilities, roles = split_state(run_on_runtime(self.process.initialize))
        return (probabilities, *roles)

    def init(self, weights: Sequence[np.ndarray] | None = None) -> ServerState:
        """The first round's state: the seed's probabilities (``weights`` unused)."""
        del weights  # the network is the seed's
        probabilities, *roles = self._initial_state()
        return ServerState(probabilities, tuple(roles))

    def model_weights(self, probabilities: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The network the probabilities make most likely (frozen at the seed)."""
        return probabilistic.most_likely(self.frozen_weights(), probabilities)

    def frozen_weights(self) -> list[np.ndarray]:
        """The seed's weights, every one (computed once)."""
        if self._frozen is None:
            self._frozen = self.process.frozen_weights()
        return self._frozen

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
        """Runs one round (`FederatedAlgorithm.apply`'s arguments and result)."""
        del epoch_examples  # no mask-distance rule
        inputs = self.process.inputs([int(c) for c in sampled], round_number, delivered)
        output = run_on_runtime(
            self.process.next,
            algorithm_state(server.weights, server.roles),
            inputs,
            list(datasets),
        )
        sent = [probabilistic.quantized(p, self.bits) for p in server.weights]
        table = dictionary.value_table(sent)
        downloads = self._downloads(server, clients, sampled, sent, table)
        coder = bernoulli.MaskCoder(sent, table)
        results, updated = [], list(clients)
        for client, report, arrived in zip(
            sampled, output.clients, delivered, strict=True
        ):
            client = int(client)
            result = self._client_result(
                client, report, arrived, coder, downloads[client]
            )
            results.append(result)
            updated[client] = clients[client].after_round(
                result.status == "aggregated",
                None,
                result.sparsity,
                personal_model=self._personal_model(result, report),
                upload_bytes=result.upload_bytes,
                download_bytes=result.download_bytes,
                downloaded_round=round_number,
            )
        measurements = measurements_of(output.metrics)
        measurements["aggregator"] = {
            "covered_fraction": float(any(r.status == "aggregated" for r in results))
        }
        held = {c.downloaded_round for c in updated}
        kept = {r: t for r, t in server.held_downloads.items() if r in held}
        # Kept while its indices fit in a byte: with the posterior reset every
        # round it has at most K + 1 values, at b <= 8 bits at most 2**b;
        # float32 probabilities of a posterior never reset have more.
        if table.values.size <= dictionary.BYTE_INDEXED_VALUES:
            kept[round_number] = table
        new_server = ServerState(*split_state(output.state), held_downloads=kept)
        return new_server, updated, results, measurements

    def _downloads(
        self,
        server: ServerState,
        clients: Sequence[ClientState],
        sampled: Sequence[int],
        sent: Sequence[np.ndarray],
        table: dictionary.ValueTable,
    ) -> dict[int, dict[str, float]]:
        """Per sampled client, what its download cost (`ClientResult` fields)."""
        if self._seeds_own(server.weights):
            full = (1, 0.0)
        else:
            full = accounting.probability_download(sent, self.bits, table)
        if self._csr is None:  # every entry sent, the same each round
            self._csr = baselines.csr_bytes([np.ones(s, bool) for s in self.shapes])
        downloads = {}
        for client in (int(c) for c in sampled):
            held = server.held_downloads.get(clients[client].downloaded_round)
            size, bound = (
                full
                if held is None
                else accounting.returning_download(sent, table, held, full)
            )
            downloads[client] = {
                "download_bytes": size,
                "download_bytes_csr": self._csr,
                "download_bound_bits": bound,
            }
        return downloads

    def _personal_model(self, result: ClientResult, report) -> CompactTensors | None:
        """The client's own network (with ``personal_models``), once aggregated."""
        if not self.personal_models or result.status != "aggregated":
            return None
        masks = [np.asarray(m, bool) for m in report.mask]
        frozen = self.frozen_weights()
        return at_positions(masks, [w[m] for w, m in zip(frozen, masks, strict=True)])

    def _seeds_own(self, probabilities: Sequence[np.ndarray]) -> bool:
        """Whether the probabilities are still the seed's first ones.

        Compared with what the process's own ``initialize`` computes (the
        computation a client runs from the seed): an eager evaluation of the
        same ops may differ from it in the last bit.
        """
        if self._first is None:
            self._first = self._initial_state()[0]
        first = zip(probabilities, self._first, strict=True)
        return all(np.array_equal(p, q) for p, q in first)

    def _client_result(
        self,
        client: int,
        report,
        arrived: bool,
        coder: bernoulli.MaskCoder,
        download: dict,
    ) -> ClientResult:
        """One client's round: its upload coded, decoded and checked."""
        if not arrived:
            return ClientResult(client, "dropped", **download)
        if not bool(report.finite):
            reason = "update rejected: NaN or Inf scores"
            return ClientResult(client, "rejected", reason, **download)
        masks = [np.asarray(m, bool) for m in report.mask]
        size, bound = accounting.mask_upload(masks, coder)
        count = int(report.num_examples)
        facts = [mask_facts.counted(m) for m in masks]
        return ClientResult(
            client,
            "aggregated",
            upload_bytes=size,
            facts=facts,
            sparsity=1.0 - sum(f.kept for f in facts) / sum(f.size for f in facts),
            mean_loss=float(report.loss_sum) / count if count else float("nan"),
            upload_bound_bits=bound,
            **download,
        )

    def upload_costs(self, aggregated: Sequence[ClientResult]) -> dict[str, float]:
        """The upload columns of the round's row (`accounting.upload_costs`)."""
        return accounting.upload_costs(
            [r.facts for r in aggregated],
            [r.upload_bytes for r in aggregated],
            self.shapes,
            "float32",
            bounds=[r.upload_bound_bits for r in aggregated],
        )

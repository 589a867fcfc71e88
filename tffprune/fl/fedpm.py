"""FedPM on the driver: the round's bytes, coded for real, and its state.

`FedPMAlgorithm` is `tffprune.fl.algorithm.FederatedAlgorithm`'s
counterpart for ``--aggregation fedpm`` (`tffprune.learning.fedpm`): the
same ``init`` / ``apply`` over explicit state, so the driver
(`tffprune.fl.training`) samples, checkpoints and evaluates a FedPM run as
any other. The server's weights are FedPM's probabilities; the model they
stand for is `model_weights`'.

What each message costs, exactly:

* down: the probabilities at ``probability_bits`` bits each, the same
  message for every client: a tag byte, then either each value at its bits
  (float32, or packed bin indices) or, when smaller, the table of distinct
  values and their indices range-coded (`tffprune.compression.dictionary`;
  with the posterior reset every round there are at most K + 1 values),
  decoded and compared like the uploads; its bound is ``n H(values)``.
  While the probabilities are still the seed's first ones the tag byte
  alone says so: the client draws them from the seed, as the server did;
* up: the client's sampled mask, range-coded under the probabilities it
  downloaded (`tffprune.compression.bernoulli`); every upload is decoded
  and compared with the mask (a mismatch fails the round); its bound is
  ``sum -log2 P(m_i)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tffprune.compression import baselines, bernoulli, dictionary
from tffprune.fl.algorithm import ClientResult, ClientState, ServerState
from tffprune.fl.process import (
    algorithm_state,
    measurements_of,
    run_on_runtime,
    split_state,
)
from tffprune.fl.residual_store import ResidualStore
from tffprune.fl.verification import UploadVerificationError
from tffprune.pruning import probabilistic


def packed_bytes(shapes: Sequence[tuple[int, ...]], bits: int) -> int:
    """The probabilities at ``bits`` bits, each tensor packed to whole bytes."""
    return sum(-(-int(np.prod(s)) * bits // 8) for s in shapes)


def download_costs(sent: Sequence[np.ndarray], bits: int) -> tuple[int, float]:
    """The download's exact size (a tag byte and the smaller coding) and bound.

    Raises:
        UploadVerificationError: If the coded table does not decode to
            ``sent`` (a bug, never expected).
    """
    shapes = [np.shape(p) for p in sent]
    message, bound = dictionary.encode_with_bound(sent)
    decoded = dictionary.decode_tensors(message, shapes)
    if any(not np.array_equal(d, p) for d, p in zip(decoded, sent, strict=True)):
        raise UploadVerificationError("the coded download decodes to other values")
    return 1 + min(len(message), packed_bytes(shapes, bits)), bound


class FedPMAlgorithm:
    """One FedPM round over explicit state (`FederatedAlgorithm`'s interface).

    Args:
        process: The `tffprune.learning.fedpm.FedPMProcess`.
        residuals: Unused by FedPM (its clients keep nothing); kept for the
            driver's clean-up, which every algorithm shares.
    """

    def __init__(self, process, residuals: ResidualStore | None = None) -> None:
        self.process = process
        self.shapes = process.shapes
        self.bits = process.download_bits
        self.residuals = residuals or ResidualStore()
        self._frozen: list[np.ndarray] | None = None
        self._first: list[np.ndarray] | None = None

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
        if self._frozen is None:
            self._frozen = self.process.frozen_weights()
        return probabilistic.most_likely(self._frozen, probabilities)

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
        size, bound = (
            (1, 0.0)
            if self._seeds_own(server.weights)
            else download_costs(sent, self.bits)
        )
        download = {
            "download_bytes": size,
            "download_bytes_csr": baselines.csr_bytes(
                [np.ones(s, bool) for s in self.shapes]
            ),
            "download_bound_bits": bound,
        }
        results, updated = [], list(clients)
        for client, report, arrived in zip(
            sampled, output.clients, delivered, strict=True
        ):
            result = self._client_result(int(client), report, arrived, sent, download)
            results.append(result)
            updated[int(client)] = clients[int(client)].after_round(
                result.status == "aggregated",
                None,
                result.sparsity,
                upload_bytes=result.upload_bytes,
                download_bytes=result.download_bytes,
            )
        measurements = measurements_of(output.metrics)
        measurements["aggregator"] = {
            "covered_fraction": float(any(r.status == "aggregated" for r in results))
        }
        return ServerState(*split_state(output.state)), updated, results, measurements

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
        self, client: int, report, arrived: bool, sent, download: dict
    ) -> ClientResult:
        """One client's round: its upload coded, decoded and checked."""
        if not arrived:
            return ClientResult(client, "dropped", **download)
        if not bool(report.finite):
            reason = "update rejected: NaN or Inf scores"
            return ClientResult(client, "rejected", reason, **download)
        masks = [np.asarray(m, bool) for m in report.mask]
        message = bernoulli.encode_masks(masks, sent)
        decoded = bernoulli.decode_masks(message, sent)
        if any(not np.array_equal(d, m) for d, m in zip(decoded, masks, strict=True)):
            raise UploadVerificationError(
                f"client {client}'s range-coded mask decodes to another mask"
            )
        count = int(report.num_examples)
        size = sum(m.size for m in masks)
        return ClientResult(
            client,
            "aggregated",
            upload_bytes=len(message),
            masks=masks,
            sparsity=1.0 - sum(int(np.count_nonzero(m)) for m in masks) / size,
            mean_loss=float(report.loss_sum) / count if count else float("nan"),
            upload_bound_bits=bernoulli.model_bits(masks, sent),
            **download,
        )

    def upload_costs(self, aggregated: Sequence[ClientResult]) -> dict[str, float]:
        """The upload columns of the round's row (`accounting.upload_costs`')."""
        clients = len(aggregated)
        size = sum(int(np.prod(s)) for s in self.shapes)
        ratios = [
            8 * r.upload_bytes / r.upload_bound_bits
            for r in aggregated
            if r.upload_bound_bits
        ]
        return {
            "upload_bytes": sum(r.upload_bytes for r in aggregated),
            "upload_bytes_dense": 4 * size * clients,
            "upload_bytes_csr": sum(baselines.csr_bytes(r.masks) for r in aggregated),
            "upload_bytes_tff_8bit": baselines.tff_8bit_bytes(self.shapes) * clients,
            "upload_bound_ratio": float(np.mean(ratios)) if ratios else float("nan"),
        }

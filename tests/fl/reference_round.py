"""The NumPy reference of a round, that tests hold the TFF round against.

Each sampled client trains in plain TensorFlow (the same training function,
outside TFF), prunes with the NumPy masks (`tffprune.pruning.policy.
build_masks`) and the guard, uploads its update (trained minus received, plus
its error-feedback residual) through the real codec
(`tffprune.compression.wire`), and the server adds what it decodes to its
float32 copy of what it sent and aggregates with the NumPy Sub-FedAvg / FedAvg
(`tffprune.fl.aggregation`).
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tffprune.compression import baselines, wire
from tffprune.compression.error_feedback import error_feedback_step
from tffprune.fl.aggregation import fedavg, sub_fedavg
from tffprune.fl.client import build_client_train_fn
from tffprune.learning.optimizers import build_optimizer
from tffprune.pruning.policy import apply_masks, build_masks


@dataclasses.dataclass
class ReferenceRound:
    weights: list
    masks: dict  # client -> new trainable masks (aggregated clients only)
    residuals: dict  # client -> new residual, all weights (with error feedback)
    upload_bytes: int
    participating: int
    download_bytes: int
    download_bytes_csr: int  # the same message as real SciPy CSR matrices


def reference_round(trainer):
    """What `trainer.run_round()` must produce, computed without TFF."""
    config, plan = trainer.config, trainer.plan
    rng = np.random.default_rng()
    rng.bit_generator.state = trainer.rng.bit_generator.state
    sampled = np.sort(
        rng.choice(config.num_clients, config.clients_per_round, replace=False)
    )
    delivered = ~(rng.random(len(sampled)) < config.dropout_rate)
    train = build_client_train_fn(
        trainer.model_fn,
        build_optimizer(
            config.resolved_client_optimizer,
            config.resolved_client_learning_rate,
            config.client_momentum,
        ),
    )
    server = trainer.state.server_weights
    num_trainable = trainer.num_trainable
    values, masks, weighting, new_masks, total_bytes = [], [], [], {}, 0
    new_residuals = {}
    download_bytes = download_bytes_csr = 0
    whole = [np.ones(w.shape, bool) for w in server[num_trainable:]]
    starts = trainer.algorithm.start_masks(
        server, trainer.state.clients, [int(c) for c in sampled], trainer.state.round
    )
    for client, arrived, start in zip(sampled, delivered, starts, strict=True):
        start = list(start)  # a returning client's masks are kept packed
        client = int(client)
        state = trainer.state.clients[client]
        # Download: a Sub-FedAvg client's own subnetwork (it holds the
        # positions once it has a mask), a FedAvg client the nonzeros.
        sent = start if plan.personal else [w != 0 for w in server[:num_trainable]]
        # Both sides hold the client's mask from its last aggregated round.
        known = plan.personal and state.mask is not None
        held = [m if known else None for m in start] + [None] * len(whole)
        payload = wire.encode(
            server, sent + whole, config.download_values, config.positions, held=held
        )
        # The server knows the subnetwork it gave a new client.
        if plan.personal and config.new_clients == "subnetwork":
            held = list(start) + [None] * len(whole)
        download_bytes += len(payload)
        download_bytes_csr += sum(
            m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
            for m in baselines.as_scipy_csr(server, sent + whole)
        )
        received, _ = wire.decode(payload, trainer.shapes, held=held)
        # The server adds what it decodes to its own float32 copy of what it
        # sent, not to the client's decoded (lossy) download.
        exact = [np.where(m, w, 0.0) for w, m in zip(server, sent + whole, strict=True)]
        trained, buffers, num_examples, _ = train(
            [tf.constant(w) for w in received[:num_trainable]],
            [tf.constant(w) for w in received[num_trainable:]],
            [tf.constant(m, tf.float32) for m in start],
            trainer.client_dataset(client, trainer.state.round),
        )
        trained = [w.numpy() for w in trained]
        buffers = [w.numpy() for w in buffers]
        if not arrived:
            continue
        target = plan.target_sparsity(trainer.state.round, state)
        mask = start
        if target > 0 and not (plan.personal and target <= state.sparsity):
            mask = build_masks(
                trained,
                plan.targets,
                plan.method,
                target,
                masks=start if plan.personal else None,
                structured_share=plan.structured_share,
            )
            if plan.personal and config.accuracy_threshold > 0:
                inputs, labels = trainer.data.client_train(client)
                dataset = tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(64)
                accuracy = float(
                    train.accuracy(apply_masks(trained, mask), buffers, dataset)
                )
                if accuracy < config.accuracy_threshold:
                    mask = start
        all_masks = mask + [np.ones(b.shape, bool) for b in buffers]
        updates = [
            np.where(m, x - r, 0.0).astype(np.float32)
            for x, r, m in zip(trained + buffers, received, all_masks, strict=True)
        ]
        if config.uses_error_feedback:
            residual = (
                trainer.residuals.read(state.residual, trainer.shapes)
                if state.residual is not None
                else [np.zeros(s, np.float32) for s in trainer.shapes]
            )
            steps = [
                error_feedback_step(u, e, m, config.upload_values)
                for u, e, m in zip(updates, residual, all_masks, strict=True)
            ]
            new_residuals[client] = [e for _, e in steps]
            updates = [
                np.where(m, u + e, 0.0).astype(np.float32)
                for u, e, m in zip(updates, residual, all_masks, strict=True)
            ]
        payload = wire.encode(
            updates, all_masks, config.upload_values, config.positions, held=held
        )
        total_bytes += len(payload)
        decoded, decoded_masks = wire.decode(payload, trainer.shapes, held=held)
        if config.uses_error_feedback:  # the client's and the server's view agree
            for (sent, _), value in zip(steps, decoded, strict=True):
                np.testing.assert_array_equal(sent, value)
        values.append(
            [
                np.where(m, r + u, 0.0).astype(np.float32)
                for r, u, m in zip(exact, decoded, decoded_masks, strict=True)
            ]
        )
        masks.append(decoded_masks)
        weighting.append(
            float(num_examples)
            if config.resolved_client_weighting == "num_examples"
            else 1.0
        )
        new_masks[client] = mask
    if not values:
        weights = list(server)
    elif plan.personal:
        weights = sub_fedavg(server, values, masks, weighting)
    else:
        weights = fedavg(server, values, weighting)
    return ReferenceRound(
        weights,
        new_masks,
        new_residuals,
        total_bytes,
        len(values),
        download_bytes,
        download_bytes_csr,
    )

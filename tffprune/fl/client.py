"""A client's work in a round, in TensorFlow (no TFF).

One client's local work, as TFF's FedAvg client does it, plus masks: start
from the received weights times the client's mask, run SGD with momentum over
its batches with every gradient multiplied by the mask, then prune and put the
upload in its value format::

    w_k       = decode(encode(w * m_k))               download (tf_values)
    x_k, n_k  = SGD(w_k, gradients * m_k)             build_client_train_fn
    m_k'      = prune(x_k, m_k, counts_k)             tffprune.pruning.tf_masks
    m_k'      = m_k  if accuracy(x_k * m_k') < guard  (Sub-FedAvg's guard)
    u_k       = (x_k - w_k) * m_k'                    the update
    s_k, e_k' = Q(u_k + e_k), what Q dropped          error feedback (optional)
    upload    = ((w * m_k + s_k) * m_k', [m_k'], weight_k)

With the mask-distance rule (Sub-FedAvg's reference client) the pruning step
is taken only if the candidate mask drawn after the first local epoch and the
one drawn after the last differ by more than a threshold (mean Hamming
distance): ``m_k' = m_k`` while the masks are still moving.

The client sends its update ``u_k`` in the upload's value format ``Q``; the
server adds what it decodes to its float32 copy of what it sent (``w * m_k``,
not the client's lossy ``w_k``), so the download's rounding never enters the
server's weights: with a low-bit download, adding ``s_k`` to ``w_k`` instead
rounds away again, at every download, each update smaller than half a
quantization step (measured on fc: 4-bit downloads stalled near 0.76
central accuracy, see experiments/README.md). The round carries ``w * m_k +
s_k`` to the aggregator, the very values the server reconstructs. With
error feedback (`tffprune.compression.error_feedback`) the client adds its
residual ``e_k`` to the update and keeps what ``Q`` dropped as its next
residual, in a file of its own that it reads and writes here
(`tffprune.fl.residual_store`): a residual never goes to the server.

With all-ones masks and no pruning the training is exactly TFF's
``build_weighted_fed_avg`` client update (same forward pass, same loss, same
SGD-momentum rule ``a = momentum * a + g; w = w - learning_rate * a``), which
is what makes ``fedavg`` match TFF's own implementation. Masked gradients keep
pruned weights at exactly zero: their gradient, momentum and update are all 0.

The functions are ``tf.function``s over plain tensors, so the orchestration
layer (`tffprune.fl.process`) wraps them in ``tff.tensorflow.computation``s.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable

import tensorflow as tf

from tffprune.compression.tf_values import transmitted, with_error_feedback
from tffprune.fl.residual_store import read_tensors, write_tensors
from tffprune.models.outputs import classification_loss
from tffprune.pruning.policy import PrunableWeight
from tffprune.pruning.tf_masks import build_masks, mask_distance

# How many times each client function's Python body ran, i.e. was traced into
# a graph (benchmarks check that rounds do not retrace).
TRACES: collections.Counter[str] = collections.Counter()


@dataclasses.dataclass(frozen=True)
class ClientOptimizerConfig:
    """SGD with momentum for local training.

    Attributes:
        learning_rate: Step size (> 0, finite).
        momentum: Momentum in [0, 1); 0 is plain SGD.
    """

    learning_rate: float = 0.01
    momentum: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.learning_rate < float("inf"):
            raise ValueError(
                f"learning_rate must be > 0 and finite, got {self.learning_rate}"
            )
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")


@dataclasses.dataclass(frozen=True)
class ClientWorkConfig:
    """What a client does after training, fixed for a run.

    Attributes:
        method: Pruning method (`tffprune.pruning.policy.METHODS`).
        targets: The prunable kernels (`PruningPolicy.select`).
        value_format: The upload's value format
            (`tffprune.compression.wire.VALUE_FORMATS`); the update is sent.
        download_format: The format the client receives the server's values
            in: its own subnetwork's values with a masked upload (Sub-FedAvg),
            the model's nonzeros otherwise; it trains from what it decodes.
        masked_upload: The upload carries the client's mask (Sub-FedAvg);
            else the server takes pruned entries as 0 (FedAvg).
        weight_by_examples: Weight the upload by the examples seen (else 1).
        accuracy_threshold: Keep a new mask only if the pruned model's
            accuracy on the client's training data is at least this (0: off).
        mask_distance_threshold: Sub-FedAvg's reference rule (None: off):
            draw a candidate mask after the first local epoch and one after
            the last, and prune only if their mean Hamming distance
            (`tffprune.pruning.tf_masks.mask_distance`) exceeds this.
        error_feedback: Add the client's residual (read from its file) to its
            update and write what the value format dropped as its new one.
        personal_models: Also return the client's own model after its local
            training and pruning (trained weights times its new mask, and its
            buffers): the model Sub-FedAvg's reference code reports.
        return_values: Also report the update (with the residual) before the
            value format (for `--verify-uploads`, which encodes it with the
            real codec).
    """

    method: str
    targets: tuple[PrunableWeight, ...]
    value_format: str = "float32"
    download_format: str = "float32"
    masked_upload: bool = True
    weight_by_examples: bool = False
    accuracy_threshold: float = 0.0
    mask_distance_threshold: float | None = None
    error_feedback: bool = False
    personal_models: bool = False
    return_values: bool = False


def build_client_train_fn(
    model_fn: Callable[[], tf.keras.Model],
    optimizer: ClientOptimizerConfig,
    early_snapshot: bool = False,
) -> Callable[..., tuple]:
    """Builds the client's training function.

    Must be called where ``model_fn`` may create variables (inside a
    ``tff.tensorflow.computation``, or eagerly).

    Args:
        model_fn: Builds the Keras model (same architecture as the server's).
        optimizer: Local optimizer settings.
        early_snapshot: Also return the trainable weights as they were after
            the batch that brought the examples seen to ``early_examples``
            (the end of the first local epoch, for the mask-distance rule).

    Returns:
        ``train(trainable, non_trainable, masks, dataset[, early_examples])
        -> (trainable, non_trainable, num_examples, loss_sum[, early])``:
        lists of tensors in ``model.trainable_weights`` /
        ``non_trainable_weights`` order, float32 masks (1 kept, 0 pruned) for
        the trainable weights, and a dataset of ``(inputs, labels)`` batches.
        ``loss_sum`` is the sum over examples of the training loss; ``early``
        (with ``early_snapshot``) the snapshot, the starting weights if the
        data never reach ``early_examples``. The returned function has an
        ``accuracy(trainable, non_trainable, dataset)`` attribute on the same
        model.
    """
    model = model_fn()
    loss_fn = classification_loss(model)
    learning_rate = tf.constant(optimizer.learning_rate, tf.float32)
    momentum = tf.constant(optimizer.momentum, tf.float32)
    use_momentum = optimizer.momentum > 0

    def load(trainable, non_trainable, masks=None):
        for index, (variable, value) in enumerate(
            zip(model.trainable_weights, trainable, strict=True)
        ):
            variable.assign(value if masks is None else value * masks[index])
        for variable, value in zip(
            model.non_trainable_weights, non_trainable, strict=True
        ):
            variable.assign(value)

    @tf.function
    def train(trainable, non_trainable, masks, dataset, early_examples=0):
        TRACES["train"] += 1
        load(trainable, non_trainable, masks)
        accumulators = tuple(tf.zeros_like(v) for v in model.trainable_weights)
        num_examples = tf.constant(0, tf.int64)
        loss_sum = tf.constant(0.0, tf.float32)
        # Loop variables even without the snapshot (autograph sees every name).
        early = (
            tuple(tf.identity(v) for v in model.trainable_weights)
            if early_snapshot
            else ()
        )
        early_taken = tf.constant(False)
        early_examples = tf.cast(early_examples, tf.int64)
        for inputs, labels in dataset:
            with tf.GradientTape() as tape:
                outputs = model(inputs, training=True)
                loss = loss_fn(labels, outputs)
            gradients = tape.gradient(loss, model.trainable_weights)
            new_accumulators = []
            for variable, gradient, mask, accumulator in zip(
                model.trainable_weights, gradients, masks, accumulators, strict=True
            ):
                gradient = gradient * mask
                if use_momentum:
                    gradient = momentum * accumulator + gradient
                new_accumulators.append(gradient)
                variable.assign_sub(learning_rate * gradient)
            accumulators = tuple(new_accumulators)
            batch_size = tf.shape(labels, out_type=tf.int64)[0]
            num_examples += batch_size
            loss_sum += loss * tf.cast(batch_size, tf.float32)
            if early_snapshot:
                take = tf.logical_and(
                    tf.logical_not(early_taken), num_examples >= early_examples
                )
                early = tf.cond(
                    take,
                    lambda: tuple(tf.identity(v) for v in model.trainable_weights),
                    lambda kept=early: kept,
                )
                early_taken = tf.logical_or(early_taken, take)
        result = (
            [tf.identity(v) for v in model.trainable_weights],
            [tf.identity(v) for v in model.non_trainable_weights],
            num_examples,
            loss_sum,
        )
        return result + (list(early),) if early_snapshot else result

    @tf.function
    def accuracy(trainable, non_trainable, dataset):
        load(trainable, non_trainable)
        correct = tf.constant(0, tf.int64)
        seen = tf.constant(0, tf.int64)
        for inputs, labels in dataset:
            outputs = model(inputs, training=False)
            predicted = tf.argmax(outputs, axis=-1, output_type=tf.int64)
            truth = tf.cast(labels, tf.int64)
            correct += tf.math.count_nonzero(tf.equal(predicted, truth))
            seen += tf.shape(labels, out_type=tf.int64)[0]
        return tf.math.divide_no_nan(
            tf.cast(correct, tf.float32), tf.cast(seen, tf.float32)
        )

    train.accuracy = accuracy
    return train


def build_client_work_fn(
    model_fn: Callable[[], tf.keras.Model],
    optimizer: ClientOptimizerConfig,
    work: ClientWorkConfig,
) -> Callable[..., tuple]:
    """Builds a client's whole round: train, prune, and what the server decodes.

    Args:
        model_fn: Builds the Keras model.
        optimizer: Local optimizer settings.
        work: Pruning method, upload format and guard.

    Returns:
        ``client_work(trainable, non_trainable, masks, counts, delivered,
        residual_files, dataset) -> (upload, report)``. ``masks``: the client's
        boolean masks for the trainable weights (training starts from weights
        times mask); ``counts``: ``(entries, slices, total,
        early_examples)`` of `tffprune.pruning.counts.PruningCounts` (all 0
        keeps the mask);
        ``delivered``: bool, False if the upload is lost; ``residual_files``:
        with error feedback, ``(read, write)``: the file holding the client's
        residual ("" for none yet) and the file its new residual is written
        to (`tffprune.fl.residual_store`); else an empty tuple. ``upload`` is
        ``(values, masks, weight)`` for a masked upload or ``(values,
        weight)`` else (weight 0 when lost or non-finite).
        ``report`` is ``(new_masks, num_examples, loss_sum, finite,
        zero_kept, residual_written, personal, mask_distance[, values])``:
        ``mask_distance`` is the rule's distance (-1 when the rule is off or
        the client does not prune this round); ``zero_kept`` per weight
        tells whether a value sent is exactly 0 (for
        `tffprune.compression.wire.encoded_size`), ``residual_written``
        True once the new residual is written (False without error
        feedback), ``personal`` the client's own model (empty unless
        ``personal_models``) per weight at the ``True`` entries of
        ``new_masks`` (all entries of a non-trainable weight), 1-D in flat
        order.
    """
    distance_rule = work.mask_distance_threshold is not None
    train = build_client_train_fn(model_fn, optimizer, early_snapshot=distance_rule)
    targets = list(work.targets)

    @tf.function
    def client_work(
        trainable, non_trainable, masks, counts, delivered, residual_files, dataset
    ):
        TRACES["client_work"] += 1
        float_masks = [tf.cast(mask, tf.float32) for mask in masks]
        sent = list(masks) if work.masked_upload else [w != 0 for w in trainable]
        received = [
            transmitted(w, mask, work.download_format)
            for w, mask in zip(trainable, sent, strict=True)
        ]
        received_buffers = [
            transmitted(w, tf.ones_like(w, tf.bool), work.download_format)
            for w in non_trainable
        ]
        prune_counts, early_examples = tuple(counts[:3]), counts[3]
        if distance_rule:
            trained, buffers, num_examples, loss_sum, early = train(
                received, received_buffers, float_masks, dataset, early_examples
            )
        else:
            trained, buffers, num_examples, loss_sum = train(
                received, received_buffers, float_masks, dataset
            )
        finite = tf.reduce_all(
            [tf.reduce_all(tf.math.is_finite(w)) for w in trained + buffers]
        )
        # Non-finite weights are replaced before pruning; the upload is then
        # dropped (weight 0) and the client's mask is left as it was.
        trained = [tf.where(finite, w, tf.zeros_like(w)) for w in trained]
        buffers = [tf.where(finite, w, tf.zeros_like(w)) for w in buffers]
        candidate = build_masks(
            work.method, targets, trained, list(masks), prune_counts
        )
        accept = finite
        distance = tf.constant(-1.0)
        if distance_rule and targets:
            early = [tf.where(finite, w, tf.zeros_like(w)) for w in early]
            early_candidate = build_masks(
                work.method, targets, early, list(masks), prune_counts
            )
            indices = [target.index for target in targets]
            distance = tf.where(
                early_examples > 0,
                mask_distance(
                    [early_candidate[i] for i in indices],
                    [candidate[i] for i in indices],
                ),
                -1.0,
            )
            accept = tf.logical_and(
                accept,
                tf.logical_or(
                    early_examples <= 0, distance > work.mask_distance_threshold
                ),
            )
        if work.accuracy_threshold > 0:
            pruned = [
                w * tf.cast(m, tf.float32)
                for w, m in zip(trained, candidate, strict=True)
            ]
            accept = tf.logical_and(
                accept,
                train.accuracy(pruned, buffers, dataset) >= work.accuracy_threshold,
            )
        new_masks = [
            tf.where(accept, new, old)
            for new, old in zip(candidate, masks, strict=True)
        ]
        all_kept = [tf.ones_like(w, tf.bool) for w in buffers]
        kept = new_masks + all_kept
        start = received + received_buffers
        updates = [
            tf.where(mask, w - w0, tf.zeros_like(w))
            for w, w0, mask in zip(trained + buffers, start, kept, strict=True)
        ]
        if work.error_feedback:
            residual = read_tensors(
                residual_files[0], [tuple(u.shape) for u in updates]
            )
            feedback = [
                with_error_feedback(u, e, mask, work.value_format)
                for u, e, mask in zip(updates, residual, kept, strict=True)
            ]
            decoded = [s for s, _, _ in feedback]
            residual_written = write_tensors(
                residual_files[1], [e for _, e, _ in feedback]
            )
            encoded = [c for _, _, c in feedback]
        else:
            decoded = [
                transmitted(u, mask, work.value_format)
                for u, mask in zip(updates, kept, strict=True)
            ]
            residual_written, encoded = tf.constant(False), updates
        # The server adds what it decodes to its own float32 copy of what it
        # sent, not to the lossy copy the client decoded: the download's
        # rounding then never enters the server's weights (were it added, an
        # update smaller than half a quantization step would be rounded away
        # again at every download).
        sent_exactly = [
            tf.where(mask, w, tf.zeros_like(w))
            for w, mask in zip(trainable, sent, strict=True)
        ] + list(non_trainable)
        values = [
            tf.where(mask, w0 + s, tf.zeros_like(s))
            for w0, s, mask in zip(sent_exactly, decoded, kept, strict=True)
        ]
        zero_kept = [
            tf.reduce_any(tf.logical_and(mask, tf.equal(u, 0.0)))
            for u, mask in zip(encoded, kept, strict=True)
        ]
        base = tf.cast(num_examples, tf.float32) if work.weight_by_examples else 1.0
        weight = tf.where(tf.logical_and(finite, delivered), base, 0.0)
        upload = (values, kept, weight) if work.masked_upload else (values, weight)
        personal = []
        if work.personal_models:
            personal = [
                _values_at(w, mask)
                for w, mask in zip(trained + buffers, kept, strict=True)
            ]
        report = (
            new_masks,
            num_examples,
            loss_sum,
            finite,
            zero_kept,
            residual_written,
            personal,
            distance,
        )
        if work.return_values:
            report += (encoded,)
        return upload, report

    return client_work


def _values_at(tensor: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """The tensor's entries at ``mask``'s ``True``s, 1-D in flat order.

    ``dynamic_partition`` is several times cheaper on CPU than
    ``boolean_mask`` (no index tensor is built).
    """
    return tf.dynamic_partition(tensor, tf.cast(mask, tf.int32), 2)[1]

"""A client's work in a round, in TensorFlow (no TFF).

One client's local work, as TFF's FedAvg client does it, plus masks: start
from its download (`tffprune.fl.messages.Download`: the server's values at
the client's mask, decoded from the download's value format), train with the
local optimizer over its batches with every gradient multiplied by the mask,
then run the steps of its `ClientWorkConfig` (`tffprune.fl.client_steps`:
pruning, guards, encoding, upload), each swappable::

    x_k, n_k  = opt(w_k, gradients * m_k)             build_client_train_fn
    m_k'      = prune(x_k, m_k, counts_k)             MethodPruning
    m_k'      = m_k  if a guard refuses m_k'          AccuracyGuard, ...
    u_k       = (x_k - w_k) * m_k'                    the update
    s_k, e_k' = Q(u_k + e_k), what Q dropped          ErrorFeedbackEncoding
    upload    = ((w + s_k) at m_k', [m_k'], weight_k)  Upload

With the mask-distance rule (`MaskDistanceGuard`, Sub-FedAvg's reference
client) the pruning step is taken only if the candidate mask drawn after the
first local epoch and the one drawn after the last differ by more than a
threshold (mean Hamming distance): ``m_k' = m_k`` once the masks have stopped
moving.

The client sends its update ``u_k`` in the upload's value format ``Q``; the
server adds what it decodes to its float32 copy of what it sent, not to the
client's lossy ``w_k``, so the download's rounding never enters the server's
weights: with a low-bit download, adding ``s_k`` to ``w_k`` instead rounds
away again, at every download, each update smaller than half a quantization
step (measured on fc: 4-bit downloads stalled near 0.76 central accuracy, see
experiments/README.md). What the round carries to the aggregator is what the
server reconstructs, ``w + s_k`` at kept entries and 0 elsewhere (a FedAvg
upload takes a dropped entry as 0; a masked one says by its mask that it has
none), so an entry every FedAvg client dropped averages to exactly 0. With
error feedback
(`tffprune.compression.error_feedback`) the client adds its residual ``e_k``
to the update and keeps what ``Q`` dropped as its next residual, in a file of
its own that it reads and writes here (`tffprune.fl.residual_store`): a
residual never goes to the server.

With all-ones masks and no pruning the training is exactly TFF's
``build_weighted_fed_avg`` client update (same forward pass, same loss, the
same ``tff.learning.optimizers`` step), which is what makes ``fedavg`` match
TFF's own implementation. Masked gradients keep pruned weights at exactly
zero: their gradient, and so every optimizer's step and moments, are 0.

The functions are ``tf.function``s over plain tensors, so the orchestration
layer (`tffprune.learning`) wraps them in ``tff.tensorflow.computation``s.
Only the training loop (a loop over a dataset) goes through autograph; the
steps and their helpers use explicit TensorFlow control flow (``tf.cond``,
``tf.where``) and are marked ``do_not_convert``: converting them cost about
3 of the 4 s autograph took in each process's build (measured on a 1-round
``tffprune train``). A guard of your own is still converted.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import tensorflow as tf

from tffprune.fl.client_steps import ClientWorkConfig, Trial
from tffprune.fl.messages import ClientOutput
from tffprune.fl.optimizer_steps import Optimizer, optimizer_steps
from tffprune.models.outputs import classification_loss
from tffprune.pruning.packed_masks import pack_tf, unpack_tf

# How many times each client function's Python body ran, i.e. was traced into
# a graph (benchmarks check that rounds do not retrace).
TRACES: collections.Counter[str] = collections.Counter()


def build_client_train_fn(
    model_fn: Callable[[], tf.keras.Model],
    optimizer: Optimizer,
    early_snapshot: bool = False,
) -> Callable[..., tuple]:
    """Builds the client's training function.

    Must be called where ``model_fn`` may create variables (inside a
    ``tff.tensorflow.computation``, or eagerly).

    Args:
        model_fn: Builds the Keras model (same architecture as the server's).
        optimizer: The local optimizer: a ``tff.learning.optimizers``
            optimizer (anything with ``initialize(specs)`` and ``next(state,
            weights, gradients) -> (state, weights)``) or a
            `tffprune.fl.optimizer_steps.MomentumSGD`,
            started afresh each round, as TFF's FedAvg client does.
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
    steps = optimizer_steps(optimizer, model.trainable_weights)
    load = build_loader(model)

    def snapshot():
        return tuple(tf.identity(v) for v in model.trainable_weights)

    @tf.function
    def train(trainable, non_trainable, masks, dataset, early_examples=0):
        TRACES["train"] += 1
        load(trainable, non_trainable, masks)
        state = steps.initialize()
        num_examples = tf.constant(0, tf.int64)
        loss_sum = tf.constant(0.0, tf.float32)
        # Loop variables even without the snapshot (autograph sees every name).
        early = snapshot() if early_snapshot else ()
        early_taken = tf.constant(False)
        early_examples = tf.cast(early_examples, tf.int64)
        for inputs, labels in dataset:
            with tf.GradientTape() as tape:
                outputs = model(inputs, training=True)
                loss = loss_fn(labels, outputs)
            gradients = tape.gradient(loss, model.trainable_weights)
            state = steps.next(state, gradients, masks)
            batch_size = tf.shape(labels, out_type=tf.int64)[0]
            num_examples += batch_size
            loss_sum += loss * tf.cast(batch_size, tf.float32)
            if early_snapshot:
                take = tf.logical_and(
                    tf.logical_not(early_taken), num_examples >= early_examples
                )
                early = tf.cond(take, snapshot, lambda kept=early: kept)
                early_taken = tf.logical_or(early_taken, take)
        result = (
            [tf.identity(v) for v in model.trainable_weights],
            [tf.identity(v) for v in model.non_trainable_weights],
            num_examples,
            loss_sum,
        )
        return result + (list(early),) if early_snapshot else result

    train.accuracy = _accuracy_fn(model, load)
    return train


def build_loader(model: tf.keras.Model) -> Callable[..., None]:
    """``load(trainable, non_trainable, masks=None)``: sets the model's weights.

    With ``masks`` (float32, 1 kept, 0 pruned, one per trainable weight) each
    trainable weight is loaded times its mask: the subnetwork.
    """

    @tf.autograph.experimental.do_not_convert
    def load(trainable, non_trainable, masks=None):
        for index, (variable, value) in enumerate(
            zip(model.trainable_weights, trainable, strict=True)
        ):
            variable.assign(value if masks is None else value * masks[index])
        for variable, value in zip(
            model.non_trainable_weights, non_trainable, strict=True
        ):
            variable.assign(value)

    return load


def _accuracy_fn(model: tf.keras.Model, load: Callable[..., None]):
    """``accuracy(trainable, non_trainable, dataset)`` of the model (argmax)."""

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

    return accuracy


def build_client_work_fn(
    model_fn: Callable[[], tf.keras.Model],
    optimizer: Optimizer,
    work: ClientWorkConfig,
) -> Callable[..., tuple]:
    """Builds a client's whole round: train, then ``work``'s steps.

    Args:
        model_fn: Builds the Keras model.
        optimizer: The local optimizer (`build_client_train_fn`).
        work: The steps (`tffprune.fl.client_steps`).

    Returns:
        ``client_work(download, client, dataset) -> (upload, output)``:
        ``download`` a `Download`, ``client`` a `ClientInput`, ``dataset``
        the client's ``(inputs, labels)`` batches. ``upload`` is
        ``work.upload``'s: per weight, what the server reconstructs (its
        float32 copy plus the decoded update) at the client's new mask, 0
        elsewhere, and a weight 0 when the upload is lost or non-finite.
        ``output`` is the client's `ClientOutput`.
    """
    train = build_client_train_fn(model_fn, optimizer, work.early_snapshot)
    targets = tuple(target.index for target in work.pruning.targets)

    @tf.function
    def client_work(download, client, dataset):
        TRACES["client_work"] += 1
        received = list(download.received)
        masks = _unpacked_masks(client.mask, received)
        trained = train(
            received[: len(masks)],
            received[len(masks) :],
            [tf.cast(mask, tf.float32) for mask in masks],
            dataset,
            client.counts.early_examples,
        )
        num_examples, loss_sum = trained[2:4]
        finite, (weights, buffers, early) = _finite_or_zeros(
            trained[0], trained[1], trained[4] if work.early_snapshot else []
        )
        trial = Trial(
            weights,
            buffers,
            early,
            masks,
            work.pruning.masks(weights, masks, client.counts),
            client.counts,
            targets,
            prune=lambda other: work.pruning.masks(other, masks, client.counts),
            accuracy=lambda pruned: train.accuracy(pruned, buffers, dataset),
        )
        new_masks, measured = _guarded_masks(work.guards, trial, finite)
        kept = new_masks + [tf.ones_like(w, tf.bool) for w in buffers]
        values, encoded, residual_written = _reconstructed(
            work.encoding, download, weights + buffers, kept, client.residual_files
        )
        upload = work.upload.build(
            values, kept, num_examples, tf.logical_and(finite, client.delivered)
        )
        output = _client_output(
            work,
            new_masks,
            (weights + buffers, kept, encoded),
            (num_examples, loss_sum, finite, residual_written),
            measured,
        )
        return upload, output

    return client_work


def _unpacked_masks(packed, received: list) -> list[tf.Tensor]:
    """The client's packed masks as booleans, shaped like the weights they cover."""
    packed = list(packed)
    return [
        unpack_tf(bits, weight.shape)
        for bits, weight in zip(packed, received[: len(packed)], strict=True)
    ]


def _reconstructed(encoding, download, trained: list, kept: list, residual_files):
    """What the server will reconstruct from the client's upload.

    Args:
        encoding: The upload's value format (`tffprune.fl.client_steps`).
        download: The client's `Download`.
        trained: The client's trained weights, then its buffers.
        kept: Their new masks (all-true for the buffers).
        residual_files: The client's error-feedback residual files.

    Returns:
        ``(values, encoded, residual_written)``: per weight, the server's
        float32 copy plus the decoded update at ``kept`` (0 elsewhere), then
        ``encoding.encode``'s other two results.
    """
    received = list(download.received)
    updates = [
        tf.where(mask, w - w0, tf.zeros_like(w))
        for w, w0, mask in zip(trained, received, kept, strict=True)
    ]
    decoded, encoded, residual_written = encoding.encode(updates, kept, residual_files)
    server = list(download.server) or received
    values = [
        tf.where(mask, w + s, tf.zeros_like(s))
        for w, s, mask in zip(server, decoded, kept, strict=True)
    ]
    return values, encoded, residual_written


@tf.autograph.experimental.do_not_convert
def _finite_or_zeros(*parts: list) -> tuple:
    """``(finite, parts)``: whether the trained weights are all finite.

    Non-finite weights are replaced by zeros before pruning; the upload is
    then dropped (weight 0) and the client's mask is left as it was.
    """
    finite = tf.reduce_all(
        [tf.reduce_all(tf.math.is_finite(w)) for w in parts[0] + parts[1]]
    )
    return finite, [[tf.where(finite, w, tf.zeros_like(w)) for w in p] for p in parts]


@tf.autograph.experimental.do_not_convert
def _client_output(work, new_masks, weights, facts, measured) -> ClientOutput:
    """The client's `ClientOutput`: its new state and what it cost.

    Args:
        work: The client work's record.
        new_masks: Its new masks (trainable weights).
        weights: ``(trained, kept, encoded)``: every trained weight, its mask
            and what was encoded of its update.
        facts: ``(num_examples, loss_sum, finite, residual_written)``.
        measured: The guards' measurements.
    """
    (trained, kept, encoded), (num_examples, loss_sum, finite, written) = (
        weights,
        facts,
    )
    return ClientOutput(
        mask=[pack_tf(mask) for mask in new_masks],
        num_examples=num_examples,
        loss_sum=loss_sum,
        finite=finite,
        zero_kept=[
            tf.reduce_any(tf.logical_and(mask, tf.equal(u, 0.0)))
            for u, mask in zip(encoded, kept, strict=True)
        ],
        residual_written=written,
        personal=[_values_at(w, m) for w, m in zip(trained, kept, strict=True)]
        if work.personal_models
        else [],
        mask_distance=measured.get("mask_distance", tf.constant(-1.0)),
        values=encoded if work.return_values else [],
    )


def _guarded_masks(guards, trial: Trial, finite) -> tuple[list, dict]:
    """The new masks, and the guards' measurements.

    The candidate, unless training was not finite or a guard refused it: then
    the client's masks before.
    """
    accept, measured = finite, {}
    for guard in guards:
        passed, measurements = guard.check(trial)
        accept = tf.logical_and(accept, passed)
        measured.update(measurements)
    new_masks = [
        tf.where(accept, new, old)
        for new, old in zip(trial.candidate, trial.masks, strict=True)
    ]
    return new_masks, measured


def _values_at(tensor: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """The tensor's entries at ``mask``'s ``True``s, 1-D in flat order.

    ``dynamic_partition`` is several times cheaper on CPU than
    ``boolean_mask`` (no index tensor is built).
    """
    return tf.dynamic_partition(tensor, tf.cast(mask, tf.int32), 2)[1]

"""A FedPM client's round in TensorFlow: train mask scores, upload a sample.

The client's work in FedPM (Isik et al., 2023; math in
`tffprune.pruning.probabilistic`)::

    w0      = ±c from the seed (frozen; never sent)
    s       = logit(p)                     p: the probabilities it downloaded
    per batch:
      m     ~ Bernoulli(sigmoid(s))        stateless, from its SampleInput.seed
      L     = loss(model at w0 * m)
      s     = opt(s, dL/ds)                straight through the sample
    upload  m' ~ Bernoulli(sigmoid(s))     its vote (`MaskVote`)

The optimizer is a ``tff.learning.optimizers`` optimizer (FedPM's code: Adam
at 0.1), started afresh each round, over the scores, which live in variables
of their own: TFF's Adam and SGD run in place there, by TensorFlow's fused
kernels (`tffprune.fl.optimizer_steps`). The model's own
variables only hold ``w0 * m`` for the forward pass; its trainable weights
must be the frozen ones (the builder refuses models with non-trainable
weights). No TFF here: `tffprune.learning.fedpm` wraps it.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from tffprune.fl.messages import MaskVote, SampledMask
from tffprune.fl.optimizer_steps import optimizer_steps
from tffprune.models.outputs import classification_loss
from tffprune.pruning import probabilistic

# Folded into a client's seed for its upload's sample (its steps fold in
# 0, 1, 2, ...).
_UPLOAD_STREAM = 2**31 - 1


def _samples(scores, seed) -> list[tf.Tensor]:
    """One Bernoulli sample per weight: ``u < sigmoid(s)``, ``u`` from ``seed``."""
    return [
        tf.random.stateless_uniform(
            tf.shape(s), seed=tf.random.experimental.stateless_fold_in(seed, index)
        )
        < tf.sigmoid(s)
        for index, s in enumerate(scores)
    ]


def build_mask_training_fn(
    model_fn: Callable[[], tf.keras.Model], optimizer, seed: int
) -> Callable[..., tuple]:
    """Builds a FedPM client's round.

    Must be called where ``model_fn`` may create variables (inside a
    ``tff.tensorflow.computation``, or eagerly).

    Args:
        model_fn: Builds the Keras model (no non-trainable weights).
        optimizer: The scores' ``tff.learning.optimizers`` optimizer, or its
            in-place rule (`tffprune.learning.optimizers.in_place`).
        seed: The network's seed (`probabilistic.tf_signed_constants`).

    Returns:
        ``client_round(probabilities, client, dataset) -> (MaskVote,
        SampledMask)``: ``probabilities`` one tensor per trainable weight (as
        downloaded), ``client`` a `SampleInput`, ``dataset`` the client's
        ``(inputs, labels)`` batches.
    """
    model = model_fn()
    loss_fn = classification_loss(model)
    variables = model.trainable_weights
    shapes = [tuple(v.shape) for v in variables]
    scores = [tf.Variable(tf.zeros(s), trainable=False) for s in shapes]
    steps = optimizer_steps(optimizer, scores)

    @tf.autograph.experimental.do_not_convert
    def step(state, frozen, inputs, labels, step_seed):
        for variable, weight, mask in zip(
            variables, frozen, _samples(scores, step_seed), strict=True
        ):
            variable.assign(weight * tf.cast(mask, tf.float32))
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(inputs, training=True))
        gradients = [
            tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
            for g, v in zip(tape.gradient(loss, variables), variables, strict=True)
        ]
        score_gradients = [
            probabilistic.tf_straight_through_gradient(g, w, s)
            for g, w, s in zip(gradients, frozen, scores, strict=True)
        ]
        return steps.next(state, score_gradients), loss

    @tf.function
    def client_round(probabilities, client, dataset):
        frozen = probabilistic.tf_signed_constants(shapes, seed)
        for score, p in zip(scores, probabilities, strict=True):
            score.assign(probabilistic.tf_scores_from(p))
        state = steps.initialize()
        client_seed = tf.cast(client.seed, tf.int64)
        batches = tf.constant(0, tf.int64)
        num_examples = tf.constant(0, tf.int64)
        loss_sum = tf.constant(0.0, tf.float32)
        for inputs, labels in dataset:
            step_seed = tf.random.experimental.stateless_fold_in(client_seed, batches)
            state, loss = step(state, frozen, inputs, labels, step_seed)
            batch_size = tf.shape(labels, out_type=tf.int64)[0]
            num_examples += batch_size
            loss_sum += loss * tf.cast(batch_size, tf.float32)
            batches += 1
        trained = [tf.identity(s) for s in scores]
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(s)) for s in trained])
        trained = [tf.where(finite, s, tf.zeros_like(s)) for s in trained]
        upload_seed = tf.random.experimental.stateless_fold_in(
            client_seed, _UPLOAD_STREAM
        )
        masks = _samples(trained, upload_seed)
        count = tf.cast(tf.logical_and(finite, client.delivered), tf.float32)
        vote = MaskVote([tf.cast(m, tf.float32) * count for m in masks], count)
        return vote, SampledMask(masks, num_examples, loss_sum, finite)

    return client_round

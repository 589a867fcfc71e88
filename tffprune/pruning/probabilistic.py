"""Probabilistic masks over a seeded random network (FedPM, Isik et al., 2023).

The weights never train: each trainable weight is frozen at a signed constant
drawn from a seed (the only weight message), ``w0 = ±c``, with FedPM's code's
``c = e / sqrt(fan_in)`` (its ``ME_init``), the bias of a layer taking its
kernel's ``c``. What trains is one score ``s`` per weight; the network a
client runs in a step is ``w0 * m`` with ``m ~ Bernoulli(sigmoid(s))``, and
the gradient passes the sample straight through as FedPM's ``Bern`` does::

    theta = sigmoid(s)
    dL/dtheta = theta * dL/dm = theta * (dL/dw) * w0
    dL/ds = dL/dtheta * theta * (1 - theta)

A client uploads one sampled mask. The server keeps a Beta posterior per
weight, ``alpha`` and ``beta`` (reset to the uniform prior 1, 1 every
``reset_every`` rounds; FedPM's code resets every round), adds each mask
smoothed to ``eps = 0.01`` from 0 and 1, and sends the posterior's mode::

    alpha += sum_k m~_k,  beta += K - sum_k m~_k,  m~ = eps + (1 - 2 eps) m
    p = (alpha - 1) / (alpha + beta - 2)

(with a reset every round, ``p`` is the mean of the smoothed masks). The
server sums the masks themselves and smooths the sum (`smoothed_sum`): each
weight's ``p`` is then a function of how many masks kept it, the same float
for the same count, in whatever order the clients' masks were added. (Summed
already smoothed, 10 masks gave up to 16 floats for 11 counts, and the
download coded them all: 0.11 bits a weight more on fc.) The
model that is exported and evaluated centrally is the posterior's most likely
network, ``w0 * (p > 0.5)``.

NumPy functions here, their TensorFlow twins beside them (``tf_`` prefix);
tests hold each pair equal. No TFF.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

SMOOTHING = 0.01
PRIOR = 1.0


def check_model(model: tf.keras.Model) -> None:
    """Raises ValueError unless every weight of ``model`` can be frozen and masked.

    FedPM keeps no weight that trains or updates itself: a model with
    non-trainable weights (BatchNormalization's statistics) is refused.
    """
    if model.non_trainable_weights:
        names = ", ".join(w.name for w in model.non_trainable_weights[:3])
        raise ValueError(
            "fedpm freezes every weight at the seed's signed constant and masks "
            f"it; the model has non-trainable weights ({names}): build it without "
            "BatchNormalization or other state, or use another --aggregation"
        )


def fan_ins(shapes: Sequence[tuple[int, ...]]) -> list[int]:
    """Each weight's fan-in: a kernel's inputs; a vector takes the kernel before.

    A Dense kernel ``(inputs, units)`` has fan-in ``inputs``, a convolution's
    ``(h, w, inputs, filters)`` ``h * w * inputs``; a bias (rank 1) follows its
    kernel in a Keras model's weights and takes its fan-in (1 if first).
    """
    result, last = [], 1
    for shape in shapes:
        if len(shape) >= 2:
            last = int(np.prod(shape[:-1]))
        result.append(last)
    return result


def tf_signed_constants(
    shapes: Sequence[tuple[int, ...]], seed: int
) -> list[tf.Tensor]:
    """The frozen weights: ``±e / sqrt(fan_in)``, signs from ``seed``.

    Stateless: the same seed gives the same weights in any process (the
    driver runs this eagerly, a client inside its computation).
    """
    weights = []
    for index, (shape, fan_in) in enumerate(zip(shapes, fan_ins(shapes), strict=True)):
        constant = np.float32(np.e / np.sqrt(fan_in))
        draw = tf.random.stateless_uniform(shape, seed=[seed, index])
        weights.append(tf.where(draw < 0.5, -constant, constant))
    return weights


def tf_initial_probabilities(
    shapes: Sequence[tuple[int, ...]], seed: int
) -> list[tf.Tensor]:
    """The first round's probabilities, ``sigmoid(N(0, 1))`` from ``seed``.

    FedPM's code draws its scores from a standard normal; drawn from the
    seed, they cost no bytes.
    """
    return [
        tf.sigmoid(tf.random.stateless_normal(shape, seed=[seed, -1 - index]))
        for index, shape in enumerate(shapes)
    ]


def straight_through_gradient(
    weight_gradient: np.ndarray, frozen: np.ndarray, scores: np.ndarray
) -> np.ndarray:
    """``dL/ds`` from ``dL/dw`` at ``w = frozen * m`` (module docstring)."""
    theta = 1.0 / (1.0 + np.exp(-np.asarray(scores, np.float64)))
    return np.asarray(weight_gradient) * frozen * theta * theta * (1.0 - theta)


def tf_straight_through_gradient(weight_gradient, frozen, scores) -> tf.Tensor:
    """TensorFlow twin of `straight_through_gradient`."""
    theta = tf.sigmoid(scores)
    return weight_gradient * frozen * theta * theta * (1.0 - theta)


def scores_from(probabilities: np.ndarray) -> np.ndarray:
    """The scores whose sigmoid is ``probabilities`` (clipped off 0 and 1)."""
    p = np.clip(np.asarray(probabilities, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1.0 - p))


def tf_scores_from(probabilities) -> tf.Tensor:
    """TensorFlow twin of `scores_from`."""
    p = tf.clip_by_value(probabilities, 1e-6, 1.0 - 1e-6)
    return tf.math.log(p / (1.0 - p))


def smoothed(mask: np.ndarray) -> np.ndarray:
    """A sampled mask as the posterior counts it: ``eps + (1 - 2 eps) m``."""
    return SMOOTHING + (1.0 - 2.0 * SMOOTHING) * np.asarray(mask, np.float64)


def smoothed_sum(kept: np.ndarray, clients: float) -> np.ndarray:
    """The sum of ``clients`` smoothed masks, ``kept`` of which kept the weight.

    ``eps * clients + (1 - 2 eps) * kept``: the sum of `smoothed` over the
    masks, computed from the count.
    """
    return SMOOTHING * clients + (1.0 - 2.0 * SMOOTHING) * np.asarray(kept, np.float64)


def tf_smoothed_sum(kept, clients) -> tf.Tensor:
    """TensorFlow twin of `smoothed_sum` (float32)."""
    return SMOOTHING * clients + (1.0 - 2.0 * SMOOTHING) * kept


def posterior_update(
    alpha: np.ndarray,
    beta: np.ndarray,
    probabilities: np.ndarray,
    kept: np.ndarray,
    clients: float,
    reset: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One round of the server's Beta posterior: ``(alpha, beta, p)``.

    Args:
        alpha: The posterior's alpha per weight before the round.
        beta: Its beta.
        probabilities: The probabilities before the round (kept where the
            posterior has seen no mask since its reset).
        kept: Per weight, how many of the round's masks kept it (the sum of
            the masks, smoothed here: `smoothed_sum`).
        clients: How many masks were summed.
        reset: Start from the uniform prior (1, 1) this round.
    """
    mask_sum = smoothed_sum(kept, clients)
    if reset:
        alpha = np.full_like(np.asarray(alpha, np.float64), PRIOR)
        beta = np.full_like(alpha, PRIOR)
    alpha = alpha + mask_sum
    beta = beta + (clients - mask_sum)
    seen = alpha + beta - 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        mode = np.where(seen > 0, (alpha - 1.0) / seen, probabilities)
    return alpha, beta, mode


def tf_posterior_update(alpha, beta, probabilities, kept, clients, reset):
    """TensorFlow twin of `posterior_update` (``reset`` a bool tensor)."""
    mask_sum = tf_smoothed_sum(kept, clients)
    alpha = tf.where(reset, tf.fill(tf.shape(alpha), PRIOR), alpha)
    beta = tf.where(reset, tf.fill(tf.shape(beta), PRIOR), beta)
    alpha = alpha + mask_sum
    beta = beta + (clients - mask_sum)
    seen = alpha + beta - 2.0
    mode = tf.where(seen > 0, tf.math.divide_no_nan(alpha - 1.0, seen), probabilities)
    return alpha, beta, mode


def quantized(probabilities: np.ndarray, bits: int) -> np.ndarray:
    """Probabilities sent at ``bits`` bits: the midpoint of their bin.

    ``q = (min(floor(p 2**b), 2**b - 1) + 0.5) / 2**b``: never 0 or 1, so a
    mask coded under ``q`` never meets an impossible entry. 32 bits: float32
    as they are.
    """
    p = np.asarray(probabilities, np.float32)
    if bits == 32:
        return p
    levels = 2**bits
    bins = np.minimum(np.floor(p * np.float32(levels)), levels - 1)
    return ((bins + np.float32(0.5)) / np.float32(levels)).astype(np.float32)


def tf_quantized(probabilities, bits: int) -> tf.Tensor:
    """TensorFlow twin of `quantized`."""
    if bits == 32:
        return tf.identity(probabilities)
    levels = float(2**bits)
    bins = tf.minimum(tf.floor(probabilities * levels), levels - 1.0)
    return (bins + 0.5) / levels


def most_likely(
    frozen: Sequence[np.ndarray], probabilities: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """The posterior's most likely network: ``frozen * (p > 0.5)``."""
    return [
        np.where(np.asarray(p) > 0.5, np.asarray(w), 0.0).astype(np.float32)
        for w, p in zip(frozen, probabilities, strict=True)
    ]

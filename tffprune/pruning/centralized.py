"""Centralized tfmot workflows: Singh & Raj (2023), section 4.

Two ways to obtain a pruned model on one machine, both with
``tfmot.sparsity.keras.prune_low_magnitude`` and the ``UpdatePruningStep``
callback, ending with ``strip_pruning`` so the result is a plain Keras model
with zeros in place:

* `prune_trained`: fine-tune an already trained model while pruning it to the
  target at once (``ConstantSparsity``), as the tfmot pruning tutorial does;
* `train_from_scratch`: train from random initialization with a
  ``PolynomialDecay`` schedule from 0 to the target, reached after 80% of the
  training steps so the last steps recover accuracy.

and, after either, `cluster_preserving_sparsity`: tfmot's sparsity-preserving
weight clustering (the first step of its "collaborative optimization"
pipeline), which leaves every pruned weight at zero and puts the others on a
few shared values, so that the quantized model zips much smaller.

Only the layers a `PruningPolicy` selects are wrapped (by default every Dense
and Conv2D layer except the logits), so the stripped model's sparsity over
those kernels equals the target.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot

from tffprune.pruning.masks import check_sparsity, num_to_prune
from tffprune.pruning.policy import PruningPolicy, SparsityReport, model_sparsity

WORKFLOWS = ("prune-trained", "from-scratch")
CENTROID_INITIALIZATION = tfmot.clustering.keras.CentroidInitialization


@dataclasses.dataclass
class CentralizedResult:
    """Outcome of a centralized workflow.

    Attributes:
        model: The trained model, pruning stripped (zeros in place).
        test_accuracy: Accuracy on the test set.
        test_loss: Loss on the test set.
        sparsity: Sparsity report of the stripped model.
        seconds: Wall-clock time of the training.
        history: Keras ``History.history`` of the training.
    """

    model: tf.keras.Model
    test_accuracy: float
    test_loss: float
    sparsity: SparsityReport
    seconds: float
    history: dict[str, list[float]]


def compile_for_classification(model: tf.keras.Model, learning_rate: float) -> None:
    """Compiles with Adam and sparse categorical cross-entropy.

    On logits, or on probabilities when the model ends in a softmax
    (`tffprune.models.outputs`).
    """
    from tffprune.models.outputs import classification_loss

    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate),
        loss=classification_loss(model),
        metrics=["accuracy"],
    )


def _wrap_prunable_layers(
    model: tf.keras.Model,
    schedule: tfmot.sparsity.keras.PruningSchedule,
    policy: PruningPolicy,
) -> tf.keras.Model:
    prunable = {target.layer for target in policy.select(model)}

    def clone(layer: tf.keras.layers.Layer) -> tf.keras.layers.Layer:
        fresh = layer.__class__.from_config(layer.get_config())
        if layer.name in prunable:
            return tfmot.sparsity.keras.prune_low_magnitude(
                fresh, pruning_schedule=schedule
            )
        return fresh

    pruned = tf.keras.models.clone_model(model, clone_function=clone)
    # Every layer was rebuilt from its config (the caller's model is left
    # untouched); copy the weights it had.
    for original, copy in zip(model.layers, pruned.layers, strict=True):
        if original.weights:
            target = copy.layer if original.name in prunable else copy
            target.set_weights(original.get_weights())
    return pruned


def _fit_with_pruning(
    model: tf.keras.Model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    verbose: int,
    policy: PruningPolicy,
    schedule: tfmot.sparsity.keras.PruningSchedule | None,
) -> CentralizedResult:
    """Fits, pruning by ``schedule`` when one is given; strips; evaluates."""
    pruning = schedule is not None
    if pruning:
        model = _wrap_prunable_layers(model, schedule, policy)
    compile_for_classification(model, learning_rate)
    started = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        epochs=epochs,
        batch_size=batch_size,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()] if pruning else [],
        verbose=verbose,
    )
    seconds = time.perf_counter() - started
    if pruning:
        model = tfmot.sparsity.keras.strip_pruning(model)
    return _result(model, x_test, y_test, policy, seconds, history, learning_rate)


def _result(
    model: tf.keras.Model,
    x_test: np.ndarray,
    y_test: np.ndarray,
    policy: PruningPolicy,
    seconds: float,
    history: tf.keras.callbacks.History,
    learning_rate: float,
) -> CentralizedResult:
    """Evaluates a trained (stripped) model and gathers its figures."""
    compile_for_classification(model, learning_rate)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0, batch_size=1024)
    return CentralizedResult(
        model=model,
        test_accuracy=float(accuracy),
        test_loss=float(loss),
        sparsity=model_sparsity(model, policy),
        seconds=seconds,
        history={k: [float(v) for v in vs] for k, vs in history.history.items()},
    )


def _check_training(epochs: int, batch_size: int) -> None:
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def train_dense(
    model: tf.keras.Model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    epochs: int = 4,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    verbose: int = 0,
) -> CentralizedResult:
    """Trains the dense baseline (no pruning)."""
    _check_training(epochs, batch_size)
    return _fit_with_pruning(
        model,
        x_train,
        y_train,
        x_test,
        y_test,
        epochs,
        batch_size,
        learning_rate,
        verbose,
        PruningPolicy(),
        schedule=None,
    )


def prune_trained(
    model: tf.keras.Model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    sparsity: float,
    epochs: int = 2,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    policy: PruningPolicy | None = None,
    verbose: int = 0,
) -> CentralizedResult:
    """Prunes a trained model to ``sparsity`` while fine-tuning it.

    Args:
        model: A trained Keras model (its weights are the starting point).
        x_train: Training images.
        y_train: Training labels.
        x_test: Test images.
        y_test: Test labels.
        sparsity: Target sparsity of each prunable kernel, in [0, 1).
        epochs: Fine-tuning epochs (>= 1).
        batch_size: Batch size.
        learning_rate: Adam learning rate for fine-tuning.
        policy: Which layers are pruned.
        verbose: Keras verbosity.

    Returns:
        The stripped model and its figures.

    Raises:
        ValueError: On invalid sparsity, epochs or batch size.
    """
    sparsity = check_sparsity(sparsity)
    _check_training(epochs, batch_size)
    policy = policy or PruningPolicy()
    # Masks are recomputed every `frequency` steps (tfmot's default 100, fewer
    # on short runs so that at least a few updates happen).
    total_steps = epochs * math.ceil(len(y_train) / batch_size)
    frequency = max(1, min(100, total_steps // 4))
    schedule = tfmot.sparsity.keras.ConstantSparsity(
        sparsity, begin_step=0, frequency=frequency
    )
    return _fit_with_pruning(
        model,
        x_train,
        y_train,
        x_test,
        y_test,
        epochs,
        batch_size,
        learning_rate,
        verbose,
        policy,
        schedule,
    )


def train_from_scratch(
    model: tf.keras.Model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    sparsity: float,
    epochs: int = 4,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    policy: PruningPolicy | None = None,
    verbose: int = 0,
) -> CentralizedResult:
    """Trains a freshly initialized model with a polynomial pruning schedule.

    The schedule rises from 0 to ``sparsity`` (tfmot ``PolynomialDecay``,
    power 3) and reaches it after 80% of the training steps; masks are updated
    every ``frequency = clamp(total_steps // 20, 1, 100)`` steps.

    Args: as `prune_trained`, with ``model`` freshly initialized.

    Returns:
        The stripped model and its figures.

    Raises:
        ValueError: On invalid sparsity, epochs or batch size.
    """
    sparsity = check_sparsity(sparsity)
    _check_training(epochs, batch_size)
    policy = policy or PruningPolicy()
    total_steps = epochs * math.ceil(len(y_train) / batch_size)
    frequency = max(1, min(100, total_steps // 20))
    end_step = max(frequency, frequency * int(0.8 * total_steps / frequency))
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=sparsity,
        begin_step=0,
        end_step=end_step,
        frequency=frequency,
    )
    return _fit_with_pruning(
        model,
        x_train,
        y_train,
        x_test,
        y_test,
        epochs,
        batch_size,
        learning_rate,
        verbose,
        policy,
        schedule,
    )


def check_clusters(
    model: tf.keras.Model, policy: PruningPolicy, sparsity: float, clusters: int
) -> None:
    """Refuses a clustering that cannot keep the requested sparsity.

    Each pruned kernel keeps ``size - round(sparsity * size)`` weights; more
    clusters than that leave centroids without weights, and tfmot then
    clusters the zeros too (a 0.8-sparse model came out dense).

    Raises:
        ValueError: Naming the kernel and the largest ``--clusters`` it takes.
    """
    if clusters < 2:
        raise ValueError(f"--clusters must be >= 2, got {clusters}")
    for target in policy.select(model):
        if target.kind == "bias":
            continue
        size = int(np.prod(model.trainable_weights[target.index].shape))
        kept = size - num_to_prune(sparsity, size)
        if clusters > kept:
            raise ValueError(
                f"--clusters {clusters} is more than the {kept} weights layer "
                f"{target.layer} keeps at sparsity {sparsity:g}; use --clusters "
                f"{kept} or fewer"
            )


def _few_values(layer: tf.keras.layers.Layer, number_of_clusters: int) -> bool:
    """Whether the layer's kernel holds at most ``number_of_clusters`` values."""
    kernel = getattr(layer, "kernel", None)
    return kernel is not None and np.unique(kernel.numpy()).size <= number_of_clusters


def cluster_preserving_sparsity(
    model: tf.keras.Model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    number_of_clusters: int,
    epochs: int = 1,
    batch_size: int = 128,
    learning_rate: float = 1e-4,
    policy: PruningPolicy | None = None,
    verbose: int = 0,
) -> CentralizedResult:
    """Clusters the kernels of a (pruned) model while keeping its zeros.

    Every kernel the policy selects is wrapped with tfmot's ``cluster_weights``
    (k-means++ initialization, ``preserve_sparsity=True``), fine-tuned, and the
    clustering is stripped: every pruned weight is still 0 and each kernel
    holds at most ``number_of_clusters`` distinct nonzero values (a kernel
    that already holds that few values, zero included, is kept as it is) (a few small
    surviving weights may join the zeros: in the recipe, 96 of 4,056).

    Args:
        model: A trained, usually pruned, Keras model; it is left untouched.
        x_train: Training images.
        y_train: Training labels.
        x_test: Test images.
        y_test: Test labels.
        number_of_clusters: Distinct values per kernel (>= 2).
        epochs: Fine-tuning epochs (0: cluster only, no training data used).
        batch_size: Batch size.
        learning_rate: Adam learning rate for fine-tuning (small: the
            centroids only need to move a little).
        policy: Which layers are clustered (the pruned ones).
        verbose: Keras verbosity.

    Returns:
        The stripped model and its figures.

    Raises:
        ValueError: On fewer than 2 clusters, invalid epochs or batch size.
    """
    if number_of_clusters < 2:
        raise ValueError(f"number_of_clusters must be >= 2, got {number_of_clusters}")
    _check_training(max(epochs, 1), batch_size)
    policy = policy or PruningPolicy()
    selected = {target.layer for target in policy.select(model)}

    # Weights must be in place before wrapping: the centroids and the sparsity
    # mask are computed from them when the wrapper is built. Fresh copies leave
    # the caller's model untouched.
    def clone_with_weights(layer: tf.keras.layers.Layer) -> tf.keras.layers.Layer:
        fresh = layer.__class__.from_config(layer.get_config())
        if layer.weights:
            fresh.build(layer.input_shape)
            fresh.set_weights(layer.get_weights())
        # A kernel that already holds no more values than the clusters (zero
        # included; a FedPM network's -c, 0, +c) is left as it is: k-means++
        # over so few distinct values can merge two of them.
        if layer.name in selected and not _few_values(layer, number_of_clusters):
            return tfmot.clustering.keras.cluster_weights(
                fresh,
                number_of_clusters=number_of_clusters,
                cluster_centroids_init=CENTROID_INITIALIZATION.KMEANS_PLUS_PLUS,
                preserve_sparsity=True,
            )
        return fresh

    clustered = tf.keras.models.clone_model(model, clone_function=clone_with_weights)
    compile_for_classification(clustered, learning_rate)
    started = time.perf_counter()
    history = tf.keras.callbacks.History()
    history.history = {}
    if epochs:
        history = clustered.fit(
            x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=verbose
        )
    seconds = time.perf_counter() - started
    stripped = tfmot.clustering.keras.strip_clustering(clustered)
    for target in policy.select(model):
        before = model.get_layer(target.layer).kernel.numpy() == 0
        after = stripped.get_layer(target.layer).kernel.numpy() == 0
        if np.any(before & ~after):
            raise ValueError(
                f"clustering into {number_of_clusters} values revived pruned "
                f"weights of layer {target.layer}; use fewer clusters"
            )
    return _result(stripped, x_test, y_test, policy, seconds, history, learning_rate)


def run_centralized(
    output_dir: str | Path,
    workflow: str = "prune-trained",
    model: str = "tfmot_cnn",
    dataset: str = "fashion_mnist",
    data_dir: str | Path | None = None,
    sparsity: float = 0.8,
    epochs: int = 4,
    fine_tune_epochs: int = 2,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    prune_logits: bool = False,
    clusters: int | None = None,
    cluster_epochs: int = 1,
    max_examples: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    announce: Callable[[str], None] | None = None,
    verbose: int = 2,
) -> dict:
    """``tffprune centralized``: a tfmot workflow on one machine, its files.

    Writes ``model.keras`` (pruning stripped, zeros in place; clustered with
    ``clusters``), ``baseline.keras`` (``prune-trained`` only) and
    ``summary.json``; returns the summary. The data and model are loaded
    before the output directory is made.

    Raises:
        ValueError: On an unknown workflow, data or model that do not fit.
    """
    if workflow not in ("prune-trained", "from-scratch"):
        raise ValueError(
            f"unknown workflow {workflow!r}; expected prune-trained or from-scratch"
        )

    from tffprune.data import load_dataset
    from tffprune.models import build_model
    from tffprune.reporting.files import (
        prepare_output_dir,
        save_keras_model_atomic,
        write_json_atomic,
    )

    announce = announce or (lambda line: None)
    data = load_dataset(dataset, data_dir)
    x_train, y_train = data.x_train, data.y_train
    if max_examples is not None and max_examples < y_train.size:
        chosen = np.random.default_rng(seed).choice(y_train.size, max_examples, False)
        x_train, y_train = x_train[chosen], y_train[chosen]
    policy = PruningPolicy(prune_logits=prune_logits)
    network = build_model(model, data.input_shape, data.num_classes, seed=seed)
    if clusters is not None:
        check_clusters(network, policy, sparsity, clusters)
    output_dir = prepare_output_dir(output_dir, overwrite=overwrite)
    summary: dict[str, object] = {
        "workflow": workflow,
        "model": model,
        "dataset": dataset,
        "target_sparsity": sparsity,
        "seed": seed,
        "train_examples": int(y_train.size),
        "prune_logits": prune_logits,
    }
    if workflow == "prune-trained":
        announce(f"training dense {model} for {epochs} epochs ...")
        baseline = train_dense(
            network,
            x_train,
            y_train,
            data.x_test,
            data.y_test,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            verbose=verbose,
        )
        announce(f"dense baseline test accuracy {baseline.test_accuracy:.4f}")
        save_keras_model_atomic(baseline.model, output_dir / "baseline.keras")
        summary["baseline_test_accuracy"] = baseline.test_accuracy
        announce(f"pruning to {sparsity:.0%} over {fine_tune_epochs} epochs ...")
        result = prune_trained(
            baseline.model,
            x_train,
            y_train,
            data.x_test,
            data.y_test,
            sparsity,
            epochs=fine_tune_epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            policy=policy,
            verbose=verbose,
        )
    else:
        announce(f"training {model} from scratch to {sparsity:.0%} sparsity ...")
        result = train_from_scratch(
            network,
            x_train,
            y_train,
            data.x_test,
            data.y_test,
            sparsity,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            policy=policy,
            verbose=verbose,
        )
    if clusters is not None:
        summary["pruned_test_accuracy"] = result.test_accuracy
        announce(
            f"pruned test accuracy {result.test_accuracy:.4f}; clustering into "
            f"{clusters} values, fine-tuning {cluster_epochs} epoch(s) ..."
        )
        result = cluster_preserving_sparsity(
            result.model,
            x_train,
            y_train,
            data.x_test,
            data.y_test,
            clusters,
            epochs=cluster_epochs,
            batch_size=batch_size,
            learning_rate=learning_rate / 10,
            policy=policy,
            verbose=verbose,
        )
    summary["clusters"] = clusters
    save_keras_model_atomic(result.model, output_dir / "model.keras")
    summary.update(
        test_accuracy=result.test_accuracy,
        test_loss=result.test_loss,
        train_seconds=result.seconds,
        sparsity=result.sparsity.as_dict(),
    )
    write_json_atomic(output_dir / "summary.json", summary)
    return summary

"""Keras functional models of the papers, built by name.

Every builder takes the input shape (height, width, channels) and the number of
classes, and returns an uncompiled model whose last layer outputs logits (no
softmax; losses use ``from_logits=True``). Layer names are stable so masks and
checkpoints can refer to them.

* ``fc``: 784-1000-1000-500-200-10 ReLU, the network of Singh & Raj (2023)'s
  sparsity sweep; 2,388,710 parameters on 28x28 inputs.
* ``tfmot_cnn``: the TensorFlow Model Optimization pruning tutorial's CNN
  (Conv2D 12 3x3 -> MaxPool 2x2 -> Flatten -> Dense 10; 20,410 parameters on
  28x28), which is the model behind Singh & Raj's Tables 1-2 sizes.
* ``simple_cnn``: the "SimpleCNN" of Jeurkar et al. (2024) as their code defines
  it: Conv2D(6, 5x5) -> max pool 2x2 -> Conv2D(16, 5x5) -> max pool 2x2 ->
  Dense 120 -> Dense 84 -> classes, ReLU, no padding; 44,426 parameters on
  28x28x1 (0.18 MB as float32; their Table 1's 0.35 MB is the same weights
  as SciPy CSR, which doubles a dense tensor). Layer for layer the same
  network as ``lenet5``.
* ``lenet5``: Sub-FedAvg's LeNet-5 (conv 6 5x5, pool, conv 16 5x5, pool,
  120-84-classes).
* ``fedavg_cnn``: the CNN of the FedAvg paper (McMahan et al., 2017): two 5x5
  convolutions (32, 64 filters, same padding) with 2x2 max pooling and a
  512-unit hidden layer; 1,663,370 parameters on 28x28x1 (tffprune's
  ``simple_cnn`` before version 0.2).
* ``resnet12``: four residual stages of three 3x3 conv + BatchNorm + ReLU with a
  1x1 projection shortcut and 2x2 max pooling, widths (64, 128, 256, 512),
  global average pooling and a linear classifier (the ResNet-12 of
  few-shot learning: 12 convolutions). ``width_multiplier`` scales the widths
  for runs on small machines.
* ``jeurkar_resnet12``: the "ResNet12" of Jeurkar et al.'s code (its
  notebooks' ``ResNet12``, PyTorch): a 3x3 stem convolution (64, BatchNorm,
  ReLU), then four stages of three basic blocks (two 3x3 conv + BatchNorm,
  identity shortcut, or a 1x1 conv + BatchNorm where the shape changes),
  widths (64, 128, 256, 512), strides (1, 2, 2, 2), global average pooling
  and a linear classifier: 12 residual blocks, 28 convolutions, 17,443,530
  trainable parameters on 28x28x1 (ResNet-18's layout with three blocks a
  stage, not few-shot ResNet-12's 12 convolutions). Stride-2 convolutions pad
  one pixel on every side as PyTorch's ``padding=1`` does; BatchNorm uses
  PyTorch's epsilon 1e-5 and momentum 0.1. ``width_multiplier`` as above.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from tffprune.models.names import MODEL_NAMES

FC_HIDDEN_UNITS = (1000, 1000, 500, 200)

_layers = tf.keras.layers


def _input(input_shape: Sequence[int]) -> tf.Tensor:
    return tf.keras.Input(shape=tuple(input_shape), name="image")


def build_fc(
    input_shape: Sequence[int],
    num_classes: int,
    hidden_units: Sequence[int] = FC_HIDDEN_UNITS,
) -> tf.keras.Model:
    """Fully connected ReLU network (default 784-1000-1000-500-200-10)."""
    inputs = _input(input_shape)
    x = _layers.Flatten(name="flatten")(inputs)
    for index, units in enumerate(hidden_units, start=1):
        x = _layers.Dense(units, activation="relu", name=f"dense_{index}")(x)
    outputs = _layers.Dense(num_classes, name="logits")(x)
    return tf.keras.Model(inputs, outputs, name="fc")


def build_tfmot_cnn(input_shape: Sequence[int], num_classes: int) -> tf.keras.Model:
    """The tfmot pruning tutorial's CNN: Conv2D(12, 3x3) -> MaxPool -> Dense."""
    inputs = _input(input_shape)
    x = _layers.Conv2D(12, 3, activation="relu", name="conv_1")(inputs)
    x = _layers.MaxPooling2D(2, name="pool_1")(x)
    x = _layers.Flatten(name="flatten")(x)
    outputs = _layers.Dense(num_classes, name="logits")(x)
    return tf.keras.Model(inputs, outputs, name="tfmot_cnn")


def build_fedavg_cnn(input_shape: Sequence[int], num_classes: int) -> tf.keras.Model:
    """McMahan et al.'s CNN: two 5x5 conv layers (32, 64), max pooling, Dense 512."""
    inputs = _input(input_shape)
    x = _layers.Conv2D(32, 5, padding="same", activation="relu", name="conv_1")(inputs)
    x = _layers.MaxPooling2D(2, name="pool_1")(x)
    x = _layers.Conv2D(64, 5, padding="same", activation="relu", name="conv_2")(x)
    x = _layers.MaxPooling2D(2, name="pool_2")(x)
    x = _layers.Flatten(name="flatten")(x)
    x = _layers.Dense(512, activation="relu", name="dense_1")(x)
    outputs = _layers.Dense(num_classes, name="logits")(x)
    return tf.keras.Model(inputs, outputs, name="fedavg_cnn")


def _lenet(input_shape: Sequence[int], num_classes: int, name: str) -> tf.keras.Model:
    """Conv 6 5x5, pool, conv 16 5x5, pool, Dense 120, Dense 84, logits."""
    inputs = _input(input_shape)
    x = _layers.Conv2D(6, 5, activation="relu", name="conv_1")(inputs)
    x = _layers.MaxPooling2D(2, name="pool_1")(x)
    x = _layers.Conv2D(16, 5, activation="relu", name="conv_2")(x)
    x = _layers.MaxPooling2D(2, name="pool_2")(x)
    x = _layers.Flatten(name="flatten")(x)
    x = _layers.Dense(120, activation="relu", name="dense_1")(x)
    x = _layers.Dense(84, activation="relu", name="dense_2")(x)
    outputs = _layers.Dense(num_classes, name="logits")(x)
    return tf.keras.Model(inputs, outputs, name=name)


def build_simple_cnn(input_shape: Sequence[int], num_classes: int) -> tf.keras.Model:
    """Jeurkar et al.'s SimpleCNN (their code's network: LeNet-5's layers)."""
    return _lenet(input_shape, num_classes, "simple_cnn")


def build_lenet5(input_shape: Sequence[int], num_classes: int) -> tf.keras.Model:
    """Sub-FedAvg's LeNet-5: conv 6 5x5, pool, conv 16 5x5, pool, 120-84-out."""
    return _lenet(input_shape, num_classes, "lenet5")


def _residual_stage(x: tf.Tensor, filters: int, stage: int) -> tf.Tensor:
    shortcut = _layers.Conv2D(
        filters, 1, use_bias=False, name=f"stage_{stage}_shortcut_conv"
    )(x)
    shortcut = _layers.BatchNormalization(name=f"stage_{stage}_shortcut_bn")(shortcut)
    for index in (1, 2, 3):
        x = _layers.Conv2D(
            filters,
            3,
            padding="same",
            use_bias=False,
            name=f"stage_{stage}_conv_{index}",
        )(x)
        x = _layers.BatchNormalization(name=f"stage_{stage}_bn_{index}")(x)
        if index < 3:
            x = _layers.ReLU(name=f"stage_{stage}_relu_{index}")(x)
    x = _layers.Add(name=f"stage_{stage}_add")([x, shortcut])
    x = _layers.ReLU(name=f"stage_{stage}_relu_out")(x)
    return _layers.MaxPooling2D(2, padding="same", name=f"stage_{stage}_pool")(x)


def _stage_widths(width_multiplier: float) -> tuple[int, ...]:
    """The four stages' widths, (64, 128, 256, 512) x multiplier (at least 1)."""
    if not width_multiplier > 0:
        raise ValueError(f"width_multiplier must be > 0, got {width_multiplier}")
    return tuple(max(1, int(round(b * width_multiplier))) for b in (64, 128, 256, 512))


def build_resnet12(
    input_shape: Sequence[int],
    num_classes: int,
    width_multiplier: float = 1.0,
) -> tf.keras.Model:
    """ResNet-12: four residual stages, widths (64, 128, 256, 512) x multiplier."""
    inputs = _input(input_shape)
    x = inputs
    for stage, width in enumerate(_stage_widths(width_multiplier), start=1):
        x = _residual_stage(x, width, stage)
    x = _layers.GlobalAveragePooling2D(name="global_pool")(x)
    outputs = _layers.Dense(num_classes, name="logits")(x)
    return tf.keras.Model(inputs, outputs, name="resnet12")


def _basic_block(x: tf.Tensor, filters: int, stride: int, name: str) -> tf.Tensor:
    """PyTorch's ``BasicBlock``: conv-BN-ReLU, conv-BN, plus shortcut, ReLU."""

    def conv_bn(inputs, size, step, suffix):
        if step > 1 and size > 1:  # PyTorch's symmetric padding=1
            inputs = _layers.ZeroPadding2D(1, name=f"{name}_pad_{suffix}")(inputs)
        outputs = _layers.Conv2D(
            filters,
            size,
            step,
            padding="same" if step == 1 else "valid",
            use_bias=False,
            name=f"{name}_conv_{suffix}",
        )(inputs)
        return _layers.BatchNormalization(
            epsilon=1e-5, momentum=0.9, name=f"{name}_bn_{suffix}"
        )(outputs)

    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, 1, stride, "shortcut")
    y = _layers.ReLU(name=f"{name}_relu_1")(conv_bn(x, 3, stride, "1"))
    y = _layers.Add(name=f"{name}_add")([conv_bn(y, 3, 1, "2"), shortcut])
    return _layers.ReLU(name=f"{name}_relu_out")(y)


def build_jeurkar_resnet12(
    input_shape: Sequence[int],
    num_classes: int,
    width_multiplier: float = 1.0,
) -> tf.keras.Model:
    """Jeurkar et al.'s "ResNet12": 4 stages of 3 basic blocks (module docstring)."""
    if not width_multiplier > 0:
        raise ValueError(f"width_multiplier must be > 0, got {width_multiplier}")

    def width(base: int) -> int:
        return max(1, int(round(base * width_multiplier)))

    inputs = _input(input_shape)
    x = _layers.Conv2D(width(64), 3, padding="same", use_bias=False, name="stem_conv")(
        inputs
    )
    x = _layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="stem_bn")(x)
    x = _layers.ReLU(name="stem_relu")(x)
    for stage, (base, stride) in enumerate(
        ((64, 1), (128, 2), (256, 2), (512, 2)), start=1
    ):
        for block in (1, 2, 3):
            x = _basic_block(
                x, width(base), stride if block == 1 else 1, f"stage_{stage}_{block}"
            )
    x = _layers.GlobalAveragePooling2D(name="global_pool")(x)
    outputs = _layers.Dense(num_classes, name="logits")(x)
    return tf.keras.Model(inputs, outputs, name="jeurkar_resnet12")


_BUILDERS: dict[str, Callable[..., tf.keras.Model]] = {
    "fc": build_fc,
    "tfmot_cnn": build_tfmot_cnn,
    "simple_cnn": build_simple_cnn,
    "lenet5": build_lenet5,
    "fedavg_cnn": build_fedavg_cnn,
    "resnet12": build_resnet12,
    "jeurkar_resnet12": build_jeurkar_resnet12,
}


def build_model(
    name: str,
    input_shape: Sequence[int],
    num_classes: int,
    seed: int | None = None,
    **options: object,
) -> tf.keras.Model:
    """Builds a model by name.

    Args:
        name: One of `MODEL_NAMES`.
        input_shape: Shape of one image, (height, width, channels).
        num_classes: Number of output logits.
        seed: If given, seeds TensorFlow's global generator first, so the same
            seed gives the same initial weights.
        **options: Builder-specific options (``hidden_units`` for ``fc``,
            ``width_multiplier`` for the two ResNets).

    Returns:
        An uncompiled Keras model with a logits output.

    Raises:
        ValueError: If the name is unknown, or the input is too small for the
            model's convolutions and pooling.
    """
    if name not in _BUILDERS:
        raise ValueError(
            f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}"
        )
    if name != "fc" and len(tuple(input_shape)) != 3:
        raise ValueError(
            f"model {name!r} needs images (height, width, channels), got inputs of "
            f"shape {tuple(input_shape)}; fc takes any shape"
        )
    if seed is not None:
        tf.keras.utils.set_random_seed(seed)
    try:
        return _BUILDERS[name](input_shape, num_classes, **options)
    except ValueError as error:
        first_line = str(error).splitlines()[0]
        raise ValueError(
            f"model {name!r} cannot take inputs of shape {tuple(input_shape)}: "
            f"{first_line}"
        ) from error

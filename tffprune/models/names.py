"""The built-in models' names (no TensorFlow import, for the CLI's options)."""

MODEL_NAMES = (
    "fc",
    "tfmot_cnn",
    "simple_cnn",
    "lenet5",
    "fedavg_cnn",
    "resnet12",
    "jeurkar_resnet12",
)

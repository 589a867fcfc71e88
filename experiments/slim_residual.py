"""How much of ResNet-12 `tffprune export --slim` removes at channel sparsity 0.5.

Builds ResNet-12 for 32x32x3 inputs, cuts half the channels of every
convolution with `build_masks(..., "channel", 0.5)` (each residual block's
last convolution and its shortcut as one group), removes them with
`tffprune.export.slim.slim_model` and checks the outputs on 64 random images.
Untrained weights: the figure is about structure (which channels can go and
how many parameters remain), not accuracy.

Usage:
    uv run python experiments/slim_residual.py
"""

import numpy as np

import tffprune  # noqa: F401  (keeps TensorFlow's C++ log lines off stderr)
from tffprune.export.slim import check_outputs, slim_model
from tffprune.models import build_model
from tffprune.pruning import PruningPolicy, apply_masks, build_masks


def main() -> None:
    model = build_model("resnet12", (32, 32, 3), 10, seed=0)
    weights = [w.numpy() for w in model.trainable_weights]
    masks = build_masks(weights, PruningPolicy().select(model), "channel", 0.5)
    for variable, value in zip(
        model.trainable_weights, apply_masks(weights, masks), strict=True
    ):
        variable.assign(value)
    slim, report = slim_model(model)
    images = np.random.default_rng(0).random((64, 32, 32, 3), np.float32)
    difference = check_outputs(model, slim, images)
    for group, (kept, before) in report.channels.items():
        print(f"{group}: {kept} of {before} channels")
    for group, reason in report.left_whole.items():
        print(f"{group}: left whole, {reason}")
    print(
        f"parameters {report.parameters_before:,} -> {report.parameters_after:,} "
        f"({report.parameters_after / report.parameters_before:.1%}); largest "
        f"output difference {difference:.2g}"
    )


if __name__ == "__main__":
    main()

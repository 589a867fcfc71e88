import numpy as np
import pytest

from tffprune.models import MODEL_NAMES, build_model


def test_fc_parameter_count_matches_paper():
    assert build_model("fc", (28, 28, 1), 10).count_params() == 2_388_710


def test_tfmot_cnn_parameter_count_matches_tutorial():
    assert build_model("tfmot_cnn", (28, 28, 1), 10).count_params() == 20_410


def test_lenet5_parameter_count_matches_sub_fedavg():
    # 156 + 2416 + 30840 + 10164 + 850 (conv, conv, 256-120, 120-84, 84-10)
    assert build_model("lenet5", (28, 28, 1), 10).count_params() == 44_426


def test_simple_cnn_is_jeurkar_et_al_simplecnn():
    # Their code: Conv2d(1, 6, 5) -> pool -> Conv2d(6, 16, 5) -> pool ->
    # Linear(256, 120) -> Linear(120, 84) -> Linear(84, 10): LeNet-5's layers.
    model = build_model("simple_cnn", (28, 28, 1), 10)
    shapes = [tuple(w.shape) for w in model.trainable_weights]

    assert shapes == [
        (5, 5, 1, 6), (6,), (5, 5, 6, 16), (16,),
        (256, 120), (120,), (120, 84), (84,), (84, 10), (10,),
    ]  # fmt: skip
    assert model.count_params() == 44_426
    # Their Table 1: 0.35 MB dense, sent as SciPy CSR (8 bytes per entry).
    assert 8 * model.count_params() / 1e6 == pytest.approx(0.355, abs=0.001)


def test_fedavg_cnn_parameter_count_matches_mcmahan_et_al():
    # 832 + 51264 + 3136 * 512 + 512 + 5130
    assert build_model("fedavg_cnn", (28, 28, 1), 10).count_params() == 1_663_370


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("shape,classes", [((28, 28, 1), 10), ((32, 32, 3), 7)])
def test_models_follow_data_set_shape(name, shape, classes):
    resnets = ("resnet12", "jeurkar_resnet12")
    options = {"width_multiplier": 0.125} if name in resnets else {}
    model = build_model(name, shape, classes, **options)

    logits = model(np.zeros((2, *shape), np.float32))

    assert logits.shape == (2, classes)
    assert model.layers[-1].name == "logits"


def test_jeurkar_resnet12_is_their_codes_resnet12():
    # Their notebooks' ResNet12: a 3x3 stem (1 -> 64), then per stage three
    # BasicBlocks (two 3x3 convs), the first with a 1x1 projection where the
    # width changes: stage 1 at 64 needs none.
    stem = 9 * 64
    stage_1 = 3 * 2 * 9 * 64 * 64
    stage_2 = 9 * 64 * 128 + 9 * 128 * 128 + 64 * 128 + 4 * 9 * 128 * 128
    stage_3 = 9 * 128 * 256 + 9 * 256 * 256 + 128 * 256 + 4 * 9 * 256 * 256
    stage_4 = 9 * 256 * 512 + 9 * 512 * 512 + 256 * 512 + 4 * 9 * 512 * 512
    convolutions = stem + stage_1 + stage_2 + stage_3 + stage_4
    # BatchNorm gamma and beta of every channel: the stem, 6 per stage, and
    # the three projections.
    channels = 64 + 6 * (64 + 128 + 256 + 512) + 128 + 256 + 512
    linear = 512 * 10 + 10
    model = build_model("jeurkar_resnet12", (28, 28, 1), 10)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    convs = [w for w in model.trainable_weights if len(w.shape) == 4]

    assert trainable == convolutions + 2 * channels + linear == 17_443_530
    assert len(convs) == 1 + 4 * 3 * 2 + 3
    # 28 -> 28 -> 14 -> 7 -> 4 (PyTorch's padding=1 at stride 2), as their
    # avg_pool2d(out, 4) expects.
    last = model.get_layer("stage_4_3_relu_out").output
    assert tuple(last.shape[1:]) == (4, 4, 512)


def test_jeurkar_resnet12_messages_are_the_papers_logged_bytes():
    from tffprune.compression.baselines import csr_bytes, jeurkar_message_bytes

    model = build_model("jeurkar_resnet12", (28, 28, 1), 10)
    shapes = [tuple(w.shape) for w in model.weights]
    dense = csr_bytes([np.ones(s, bool) for s in shapes])
    # Global unstructured at 80% over every conv and linear weight and the
    # linear bias (its convolutions have none): 17,430,090 entries.
    prunable = sum(int(np.prod(s)) for s in shapes if len(s) > 1) + 10
    pruned = round(0.8 * prunable)

    # Their Experimental data/MNIST_ResNet12_Unstructured.json, "bytes sent"
    # at pruning rates 0.0 and 0.8 (28 BatchNorm layers).
    assert jeurkar_message_bytes(shapes, 28, dense) == 163_303_855
    at_80 = jeurkar_message_bytes(shapes, 28, dense - 8 * pruned)
    assert abs(at_80 - 51_751_287) <= 80  # which of the 10 biases: unknown


def test_same_seed_same_weights():
    first = build_model("lenet5", (28, 28, 1), 10, seed=7).get_weights()
    second = build_model("lenet5", (28, 28, 1), 10, seed=7).get_weights()

    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_unknown_model_and_too_small_input():
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        build_model("vgg", (28, 28, 1), 10)
    with pytest.raises(ValueError, match=r"cannot take inputs of shape \(8, 8, 1\)"):
        build_model("lenet5", (8, 8, 1), 10)

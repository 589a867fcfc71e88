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
    options = {"width_multiplier": 0.125} if name == "resnet12" else {}
    model = build_model(name, shape, classes, **options)

    logits = model(np.zeros((2, *shape), np.float32))

    assert logits.shape == (2, classes)
    assert model.layers[-1].name == "logits"


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

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

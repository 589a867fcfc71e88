import pytest

from tffprune.config import (
    ConfigError,
    TrainConfig,
    config_from_mapping,
    load_toml,
    to_toml,
)


def test_toml_round_trip(tmp_path):
    config = TrainConfig(
        model="lenet5", sparsity=0.8, partition="shards", data_dir="/d"
    )
    path = tmp_path / "run.toml"
    path.write_text(to_toml(config))

    assert load_toml(path) == config


def test_command_line_overrides_toml(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[train]\nmodel = "lenet5"\nrounds = 7\n')

    resolved = config_from_mapping({"rounds": 3}, load_toml(path))

    assert (resolved.model, resolved.rounds) == ("lenet5", 3)


@pytest.mark.parametrize(
    "text,message",
    [
        ("rounds = 5\nspeed = 2\n", "unknown key 'speed'"),
        ('rounds = "five"\n', "rounds must be a whole number, got 'five'"),
        ("sparsity = 1.5\n", r"sparsity must be in \[0, 1\), got 1.5"),
        ('partition = "random"\n', "unknown partition 'random'"),
        ("rounds = [\n", "is not valid TOML"),
    ],
)
def test_invalid_toml_names_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)

    with pytest.raises(ConfigError, match=message):
        load_toml(path)


def test_default_weighting_follows_the_papers():
    assert TrainConfig(aggregation="fedavg").resolved_client_weighting == "num_examples"
    assert TrainConfig(aggregation="subfedavg").resolved_client_weighting == "uniform"


def test_the_client_optimizer_defaults_by_aggregation(tmp_path):
    plain, fedpm = TrainConfig(), TrainConfig(aggregation="fedpm")
    assert (plain.resolved_client_optimizer, plain.resolved_client_learning_rate) == (
        "sgdm",
        0.05,
    )
    # FedPM trains mask scores with its code's Adam at 0.1.
    assert (fedpm.resolved_client_optimizer, fedpm.resolved_client_learning_rate) == (
        "adam",
        0.1,
    )
    path = tmp_path / "run.toml"
    path.write_text('[train]\naggregation = "fedpm"\nclient_learning_rate = 1\n')
    given = load_toml(path)
    assert (given.resolved_client_optimizer, given.resolved_client_learning_rate) == (
        "adam",
        1.0,
    )


def test_adam_on_weights_starts_at_keras_default_rate():
    adam = TrainConfig(client_optimizer="adam")
    assert adam.resolved_client_learning_rate == 0.001
    assert TrainConfig(client_optimizer="sgd").resolved_client_learning_rate == 0.05
    given = TrainConfig(client_optimizer="adam", client_learning_rate=0.01)
    assert given.resolved_client_learning_rate == 0.01


@pytest.mark.parametrize(
    "changes,unused",
    [
        (dict(), []),
        (dict(aggregation="fedpm"), []),
        (dict(aggregation="fedpm", method="none", sparsity=0.0), []),
        (
            dict(aggregation="fedpm", sparsity=0.8, upload_values="int8"),
            ["--sparsity 0.8", "--upload-values int8"],
        ),
        (dict(aggregation="fedpm", server_learning_rate=0.5), ["--server-learning"]),
        (dict(probability_bits=4, prior_reset=0), ["--probability-bits 4", "--prior"]),
        (dict(client_optimizer="adam", client_momentum=0.9), ["--client-momentum 0.9"]),
        (dict(client_optimizer="sgdm", client_momentum=0.9), []),
        (dict(server_optimizer="adam", server_momentum=0.5), ["--server-momentum"]),
        (dict(server_optimizer="sgd", server_epsilon=0.01), ["--server-epsilon"]),
        (dict(server_optimizer="yogi", server_epsilon=0.01), []),
    ],
)
def test_a_setting_the_run_does_not_use_is_named(changes, unused):
    notes = TrainConfig(**changes).unused_settings
    assert len(notes) == len(unused), notes
    for note, start in zip(notes, unused, strict=True):
        assert note.startswith(start) and " is not used: " in note


@pytest.mark.parametrize(
    "changes,message",
    [
        (dict(probability_bits=5), "probability_bits must be one of 32, 8, 6"),
        (dict(prior_reset=-1), "prior_reset must be a whole number >= 0"),
        (dict(client_learning_rate=0.0), "client_learning_rate must be > 0"),
    ],
)
def test_bad_fedpm_options_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(aggregation="fedpm", **changes)


def test_width_multiplier_reaches_resnet12_only():
    assert TrainConfig(model="resnet12", width_multiplier=0.25).model_options == {
        "width_multiplier": 0.25
    }
    assert TrainConfig(model="fc", width_multiplier=0.25).model_options == {}
    for bad in (0, float("inf")):
        with pytest.raises(ConfigError, match=r"width_multiplier must be in \(0, 16\]"):
            TrainConfig(model="resnet12", width_multiplier=bad)


def test_every_option_is_declared_once_with_help_and_group():
    import dataclasses

    from tffprune.config import GROUPS

    for field in dataclasses.fields(TrainConfig):
        assert field.metadata["group"] in GROUPS, field.name
        assert field.metadata["help"].endswith((".", ")")), field.name


def test_cli_options_come_from_the_config_declarations():
    import dataclasses

    from click.testing import CliRunner

    from tffprune.cli import cli

    text = CliRunner().invoke(cli, ["train", "--help"], terminal_width=200).output
    for field in dataclasses.fields(TrainConfig):
        flag = field.metadata["flag"] or "--" + field.name.replace("_", "-")
        assert flag.split("/")[0] in text, field.name
    assert "Pruning options:" in text and "Communication options:" in text
    assert "[none|weight|global-weight|unit|channel|layer-channel|hybrid]" in text


def test_toml_with_keys_outside_the_train_table_is_refused(tmp_path):
    path = tmp_path / "mixed.toml"
    path.write_text("rounds = 2\n[train]\nsparsity = 0.8\n")

    with pytest.raises(ConfigError, match="keys rounds are outside the"):
        load_toml(path)

"""FedPM driven by the trainer: exact bytes both ways, resumable, exportable."""

import numpy as np
import pytest

from tffprune.checkpoint import load_checkpoint, save_checkpoint
from tffprune.compression import bernoulli, dictionary
from tffprune.config import TrainConfig
from tffprune.data import build_federated_data, load_dataset
from tffprune.export.client_model import read_client_model
from tffprune.export.pipeline import export_model
from tffprune.fl import fedpm
from tffprune.fl.process import run_on_runtime
from tffprune.fl.training import Trainer
from tffprune.pruning import probabilistic
from tffprune.run import run_training

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data():
    return build_federated_data(load_dataset("digits"), 4, "iid", seed=1)


def _config(**changes):
    settings = dict(
        dataset="digits",
        model="tfmot_cnn",
        aggregation="fedpm",
        num_clients=4,
        clients_per_round=3,
        local_epochs=3,
        batch_size=16,
        rounds=6,
        seed=2,
    )
    return TrainConfig(**{**settings, **changes})


def _client_zero_next_round(trainer, monkeypatch):
    """Clients' states, client 0's `ClientResult` and the masks it uploaded,
    after it alone runs a round (the masks as the round returned them)."""
    outputs = []

    def run_and_keep(*arguments):
        outputs.append(run_on_runtime(*arguments))
        return outputs[-1]

    monkeypatch.setattr(fedpm, "run_on_runtime", run_and_keep)
    round_number = trainer.state.round
    _, clients, (result,), _ = trainer.algorithm.apply(
        trainer.state.server,
        trainer.state.clients,
        [0],
        round_number,
        [trainer.client_data(0, round_number)],
        [True],
    )
    masks = [np.asarray(m, bool) for m in outputs[-1].clients[0].mask]
    return clients, result, masks


def test_a_fedpm_run_learns_with_every_message_counted_exactly(data):
    trainer = Trainer(_config(probability_bits=4), data)
    assert trainer.unpruned_layers == []  # every weight is masked, logits too
    sizes = [int(np.prod(s)) for s in trainer.shapes]
    rows = [trainer.run_round() for _ in range(6)]

    # Down: at most 4 bits a probability (each tensor packed to whole bytes)
    # and a tag byte, to each of the 3 clients.
    for row in rows:
        assert row["download_bytes"] <= 3 * (1 + sum(-(-n * 4 // 8) for n in sizes))
    # The first round's probabilities are the seed's: a tag byte says so.
    assert rows[0]["download_bytes"] == 3
    assert rows[1]["download_bytes"] > 3 * 100
    # Up: range-coded masks at their bound (50 to 140 bytes a client
    # here, so its last one or two 32-bit words show; to the bit below).
    for row in rows:
        assert 1.0 <= row["upload_bound_ratio"] < 1.2
        assert row["upload_bytes"] < row["upload_bytes_dense"] / 20
    assert rows[0]["central_accuracy"] < 0.3
    assert rows[-1]["central_accuracy"] > 0.6


def test_the_seeds_probabilities_cost_a_tag_byte_for_a_large_model_too(data):
    # fc's 1000 x 1000 kernels: evaluated eagerly, the seed's probabilities
    # differ from the process's in the last bit of 0.6% of the entries.
    trainer = Trainer(_config(model="fc", rounds=1, local_epochs=1), data)
    row = trainer.run_round()
    assert row["download_bytes"] == 3


def test_the_upload_is_the_clients_mask_coded_under_what_it_downloaded(
    data, monkeypatch
):
    trainer = Trainer(_config(probability_bits=2, clients_per_round=1), data)
    trainer.run_round()  # past the seed's own probabilities
    sent = [probabilistic.quantized(p, 2) for p in trainer.state.server_weights]
    _, result, masks = _client_zero_next_round(trainer, monkeypatch)
    packed = sum(-(-s.size * 2 // 8) for s in sent)
    table = len(dictionary.encode_tensors(sent))
    assert result.download_bytes == 1 + min(packed, table)
    assert result.download_bound_bits == pytest.approx(dictionary.entropy_bits(sent))
    assert result.upload_bytes == len(bernoulli.encode_masks(masks, sent))
    kept = sum(int(m.sum()) for m in masks)
    assert result.sparsity == pytest.approx(1 - kept / sum(m.size for m in masks))
    bound = bernoulli.model_bits(masks, sent)
    assert result.upload_bound_bits == pytest.approx(bound)
    assert bound <= 8 * result.upload_bytes <= bound + 64


def test_a_returning_client_downloads_only_what_changed_since_its_round(
    data, monkeypatch
):
    trainer = Trainer(_config(), data)
    for _ in range(3):
        trainer.run_round()
    client = trainer.state.clients[0]
    held = trainer.state.server.held_downloads[client.downloaded_round]
    sent = [probabilistic.quantized(p, 32) for p in trainer.state.server_weights]
    table = dictionary.value_table(sent)
    clients, result, _ = _client_zero_next_round(trainer, monkeypatch)
    full = 1 + len(dictionary.encode_tensors(sent))  # fewer than packed floats
    change = 1 + len(dictionary.encode_given(table, held)[0])
    # Here the change costs about half of the whole message (about 130 of 240
    # bytes: tfmot_cnn's 1,210 probabilities, 4 values of 3 clients).
    assert change < 0.7 * full
    assert result.download_bytes == change
    assert result.download_bound_bits == pytest.approx(
        dictionary.conditional_bits(table, held)
    )
    assert clients[0].downloaded_round == 3


def test_a_resumed_fedpm_run_equals_one_that_never_stopped(data, tmp_path):
    config = _config(rounds=3, prior_reset=0, probability_bits=4)
    straight = Trainer(config, data)
    for _ in range(3):
        straight.run_round()

    first = Trainer(config, data)
    first.run_round()
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, first.state, {"identity": 1}, first.shapes)
    resumed = Trainer(config, data, load_checkpoint(path, {"identity": 1}))
    for _ in range(2):
        resumed.run_round()

    for ours, theirs in zip(
        resumed.state.server_weights, straight.state.server_weights, strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)
    # The downloads clients hold came back: the returning clients' bytes too.
    assert [r["download_bytes"] for r in resumed.state.metrics] == [
        r["download_bytes"] for r in straight.state.metrics
    ]
    assert sorted(resumed.state.server.held_downloads) == [1, 2]
    # The posterior (never reset) is the finalizer's state: it came back too.
    finalizer = resumed.state.server.roles[3]
    assert finalizer["rounds"] == 3


def test_a_client_keeps_the_seeds_network_at_the_mask_it_uploaded(
    data, monkeypatch
):
    trainer = Trainer(_config(personal_models=True), data)
    row = trainer.run_round()
    assert 0.0 < row["personal_accuracy"] <= 1.0
    assert row["clients_without_personal_model"] == 1  # 3 of 4 took part
    clients, _, masks = _client_zero_next_round(trainer, monkeypatch)
    frozen = trainer.algorithm.frozen_weights()
    own = clients[0].personal_model.expand(trainer.shapes)
    for weight, start, mask in zip(own, frozen, masks, strict=True):
        np.testing.assert_array_equal(weight, np.where(mask, start, 0))


def test_the_exported_model_is_the_seeds_network_at_its_likeliest_mask(data):
    trainer = Trainer(_config(rounds=1), data)
    trainer.run_round()
    model = trainer.global_model()
    frozen = [w.numpy() for w in probabilistic.tf_signed_constants(trainer.shapes, 2)]
    for weight, start, p in zip(
        model.get_weights(), frozen, trainer.state.server_weights, strict=True
    ):
        np.testing.assert_array_equal(weight, np.where(p > 0.5, start, 0))


def test_a_fedpm_run_exports_to_two_bit_lookup_tables_losslessly(tmp_path):
    # Three values per layer (-c, 0, +c): 3 clusters lose nothing.
    run = tmp_path / "run"
    run_training(
        TrainConfig(
            dataset="fashion_mnist",
            model="tfmot_cnn",
            aggregation="fedpm",
            num_clients=4,
            clients_per_round=2,
            max_examples=2000,
            rounds=2,
            personal_models=True,
        ),
        run,
        progress=False,
    )
    # A client's own network is the seed's: one magnitude a layer, or 0.
    owned = [read_client_model(run, str(c))[0] for c in range(4)]
    owned = [m for m in owned if m.kind == "own model"]
    assert owned
    for weight in owned[0].weights:
        assert np.unique(np.abs(weight[weight != 0])).size == 1
    plain = export_model(run, tmp_path / "int8", "int8", eval_examples=500)
    lut = export_model(
        run, tmp_path / "lut", "int8", eval_examples=500, clusters=3, compress="lut"
    )

    assert lut["cluster_epochs"] == 0
    assert lut["keras_accuracy"] == plain["keras_accuracy"]  # the same 500
    assert lut["tflm_accuracy"] == pytest.approx(plain["tflm_accuracy"], abs=0.002)
    compressed = [t for t in lut["lut_tensors"] if t["index_bits"] is not None]
    assert compressed and all(t["index_bits"] <= 2 for t in compressed)
    assert lut["flash_bytes"] < 0.6 * plain["flash_bytes"]

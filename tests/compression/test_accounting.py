"""What a round's messages cost: FedPM's three, coded, checked and bounded."""

import numpy as np
import pytest

from tffprune.compression import accounting, bernoulli, dictionary, mask_facts


def _levels(rng, shape):
    """FedPM's probabilities after a round of 10 clients: 11 levels."""
    levels = np.float32(0.01) + np.float32(0.98) * np.arange(11, dtype=np.float32) / 10
    return rng.choice(levels, shape)


def test_a_download_of_few_values_is_their_table_when_smaller_than_bits():
    rng = np.random.default_rng(0)
    sent = [_levels(rng, (200, 100)), _levels(rng, (100,))]
    size, bound = accounting.probability_download(sent, 32)
    assert size == 1 + len(dictionary.encode_tensors(sent))
    assert bound == pytest.approx(dictionary.entropy_bits(sent))
    assert size < 20_100 * 4 / 6  # 11 levels: under 4 bits, not 32
    # At 1 bit a value, the packed bits (2,500 + 13 bytes) are smaller.
    assert accounting.probability_download(sent, 1)[0] == 1 + 2500 + 13


def test_a_returning_client_gets_the_change_only_when_it_is_smaller():
    rng = np.random.default_rng(1)
    held = [_levels(rng, (300, 100))]
    mostly = [np.where(rng.random((300, 100)) < 0.9, held[0], _levels(rng, (300, 100)))]
    table, held_table = dictionary.value_table(mostly), dictionary.value_table(held)
    full = accounting.probability_download(mostly, 32, table)

    size, bound = accounting.returning_download(mostly, table, held_table, full)

    assert size == 1 + len(dictionary.encode_given(table, held_table)[0])
    assert size < full[0] / 3
    assert bound == pytest.approx(dictionary.conditional_bits(table, held_table))
    # Values unrelated to the held ones: the change costs more; the whole goes.
    fresh = [_levels(rng, (300, 100))]
    fresh_table = dictionary.value_table(fresh)
    fresh_full = accounting.probability_download(fresh, 32, fresh_table)
    assert (
        accounting.returning_download(fresh, fresh_table, held_table, fresh_full)
        == fresh_full
    )


def test_a_mask_upload_is_its_range_code_at_its_bound():
    # p = 1/2 everywhere: one bit an entry, 80,000 bits, plus at most 2 words.
    rng = np.random.default_rng(2)
    probabilities = [np.full((400, 200), 0.5)]
    masks = [rng.random((400, 200)) < 0.5]
    size, bound = accounting.mask_upload(masks, bernoulli.MaskCoder(probabilities))
    assert bound == pytest.approx(80_000)
    assert 10_000 <= size <= 10_008


def test_upload_columns_take_a_messages_own_bound():
    facts = [[mask_facts.whole((10, 10))], [mask_facts.counted(np.zeros((10, 10)))]]
    columns = accounting.upload_costs(
        facts, [50, 30], [(10, 10)], "float32", bounds=[400.0, 120.0]
    )
    assert columns["upload_bytes"] == 80
    assert columns["upload_bytes_dense"] == 2 * 400
    # (8 * 50 / 400 + 8 * 30 / 120) / 2 = (1 + 2) / 2
    assert columns["upload_bound_ratio"] == pytest.approx(1.5)

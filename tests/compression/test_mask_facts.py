import numpy as np
import pytest

from tffprune.compression import baselines, encode, mask_facts, wire
from tffprune.compression.mask_facts import MaskFacts


def test_facts_hand_worked():
    # 10 entries, 3 kept at 1, 4, 8: gaps 1, 2, 3; mean 2 -> k from 0..3.
    # k = 1: quotients 0, 1, 1 -> 2 + 3 unary bits, 3 remainder bits: the
    # fewest (k = 0: 6 + 3; k = 2: 0 + 3 + 6), so 1 + 1 + 1 bytes.
    mask = np.zeros(10, bool)
    mask[[1, 4, 8]] = True
    held = mask.copy()
    held[[4, 9]] = [False, True]

    assert mask_facts.of(mask) == MaskFacts((10,), 3, None, 3, None)
    # Flipped positions 4 and 9: gaps 4, 4; k = 1, 2, 3 tie at 8 bits and the
    # first is taken: 6 unary bits and 2 remainder bits, 1 + 1 + 1 bytes.
    assert mask_facts.of(mask, held) == MaskFacts((10,), 3, 2, 3, 3)
    # Nothing flipped, or everything kept: no code is ever needed.
    assert mask_facts.of(mask, mask) == MaskFacts((10,), 3, 0)
    assert mask_facts.of(np.ones((2, 5), bool)) == MaskFacts((2, 5), 10)
    assert mask_facts.whole((2, 5)) == MaskFacts((2, 5), 10)


def test_the_sizes_from_facts_are_the_sizes_from_masks():
    rng = np.random.default_rng(4)
    masks = [rng.random((30, 20)) < 0.2, rng.random(20) < 0.9]
    held = [m ^ (rng.random(m.shape) < 0.01) for m in masks]
    values = [rng.normal(size=m.shape).astype(np.float32) for m in masks]
    facts = mask_facts.of_all(masks, held)

    for value_format in ("float32", "int8", "int2"):
        assert wire.encoded_size_of(facts, value_format) == len(
            encode(values, masks, value_format, held=held)
        )
    assert baselines.csr_bytes_of(facts) == baselines.csr_bytes(masks)
    assert baselines.information_bound_bits_of(facts, "int8") == pytest.approx(
        baselines.information_bound_bits(masks, "int8", held)
    )

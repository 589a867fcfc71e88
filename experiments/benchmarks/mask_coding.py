"""FedPM's upload coding: one entry a symbol against eight (`MaskCoder`).

A FedPM round codes, checks by decoding, and bounds each sampled client's
mask under the probabilities it downloaded. With the posterior reset every
round those take at most ``K + 1`` values for ``K`` clients, so
`tffprune.compression.bernoulli.MaskCoder` groups the entries by value and
codes eight a symbol. This benchmark times, in one run, that coder against
one ``Bernoulli`` symbol an entry (constriction's range coder, as the coder
was before), on fc's 2,388,710 weights with probabilities of FedPM's shape:
``(votes + 1/2) / (K + 1)`` for ``K = 10`` clients, the votes of each weight
drawn from a binomial around its own Beta-distributed rate. It prints the
median per mask (encode, decode, bound) and the sizes.

Usage:
    uv run python experiments/benchmarks/mask_coding.py [--masks 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import constriction
import numpy as np

from tffprune.compression import bernoulli, dictionary

FC_WEIGHTS = 2_388_710
CLIENTS = 10


def fedpm_like_probabilities(rng: np.random.Generator) -> np.ndarray:
    """Probabilities of FedPM's shape after a round of ``CLIENTS`` votes."""
    rates = rng.beta(0.4, 0.4, FC_WEIGHTS)
    votes = rng.binomial(CLIENTS, rates)
    return ((votes + 0.5) / (CLIENTS + 1)).astype(np.float32)


def per_entry(masks: np.ndarray, probabilities: np.ndarray) -> int:
    """One ``Bernoulli`` symbol an entry: encode, decode and check, bound; bytes."""
    model = constriction.stream.model.Bernoulli(perfect=False)
    q = probabilities.astype(np.float64)
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(masks.astype(np.int32), model, q)
    words = encoder.get_compressed()
    decoded = constriction.stream.queue.RangeDecoder(words).decode(model, q)
    if not np.array_equal(decoded.astype(bool), masks):
        raise SystemExit("the per-entry coder decoded another mask")
    bernoulli.model_bits([masks], [probabilities])
    return 4 * words.size


def grouped(masks: np.ndarray, coder: bernoulli.MaskCoder) -> tuple[int, float]:
    """`MaskCoder`: encode, decode and check, bound."""
    message = coder.encode([masks])
    if not np.array_equal(coder.decode(message)[0], masks):
        raise SystemExit("MaskCoder decoded another mask")
    return len(message), coder.bits([masks])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masks", type=int, default=10, help="masks a round")
    parser.add_argument("--repeats", type=int, default=5)
    arguments = parser.parse_args()
    rng = np.random.default_rng(0)
    probabilities = fedpm_like_probabilities(rng)
    masks = [rng.random(FC_WEIGHTS) < probabilities for _ in range(arguments.masks)]
    seconds: dict[str, list[float]] = {"per entry": [], "eight a symbol": []}
    sizes: dict[str, int] = {}
    for _ in range(arguments.repeats):
        started = time.perf_counter()
        for mask in masks:
            sizes["per entry"] = per_entry(mask, probabilities)
        seconds["per entry"].append(time.perf_counter() - started)
        started = time.perf_counter()
        table = dictionary.value_table([probabilities])
        coder = bernoulli.MaskCoder([probabilities], table)
        for mask in masks:
            sizes["eight a symbol"], bound = grouped(mask, coder)
        seconds["eight a symbol"].append(time.perf_counter() - started)
    print(
        f"fc, {FC_WEIGHTS:,} entries, {table.values.size} distinct probabilities, "
        f"{arguments.masks} masks a round (encode, decode and compare, bound), "
        f"median of {arguments.repeats}"
    )
    baseline = statistics.median(seconds["per entry"])
    for name, values in seconds.items():
        median = statistics.median(values)
        print(
            f"{name:<16} {median:7.3f} s a round  {baseline / median:5.1f}x faster "
            f"than per entry  last mask {sizes[name]:,} bytes"
        )
    print(f"bound of the last mask: {bound / 8:,.0f} bytes")


if __name__ == "__main__":
    main()

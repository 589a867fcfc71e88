"""What the experiment scripts share: configurations from experiments/configs.

``configuration("shards", method="weight")`` reads ``configs/defaults.toml``,
then ``configs/shards.toml`` on top, then the keyword overrides. ``QUICK`` are
the overrides of every script's ``--quick`` smoke test (1-2 rounds, small
data), which CI runs so the scripts cannot rot.
"""

from __future__ import annotations

from pathlib import Path

from tffprune.config import TrainConfig, load_toml

CONFIGS = Path(__file__).parent / "configs"
RESULTS = Path(__file__).parent / "results"
QUICK = dict(
    rounds=2,
    num_clients=20,
    clients_per_round=4,
    local_epochs=1,
    max_examples=4000,
    eval_every=1,
)


def configuration(*names: str, quick: bool = False, **overrides: object) -> TrainConfig:
    """Defaults, then each named override file, then ``overrides``."""
    config = load_toml(CONFIGS / "defaults.toml")
    for name in names:
        config = load_toml(CONFIGS / f"{name}.toml", base=config)
    config = config.replace(**overrides)
    return config.replace(**QUICK) if quick else config

"""Sparsity schedules over federated rounds.

A schedule is a small callable: ``schedule(round_number) -> sparsity`` for
rounds counted from 0. Each validates its arguments in its constructor and
round-trips through ``get_config`` / `schedule_from_config`, like tfmot's
``PruningSchedule`` classes, but counts federated rounds instead of Keras
steps (TFF never runs the Keras callbacks tfmot's schedules rely on).

* `ConstantSparsity`: ``s(r) = target`` from ``begin_round`` on, 0 before.
* `PolynomialDecay`: tfmot's formula over rounds,
  ``s(r) = final + (initial - final) * (1 - (r' - begin) / (end - begin)) ** power``
  with ``r' = begin + frequency * floor((min(r, end) - begin) / frequency)``
  (sparsity changes every ``frequency`` rounds), 0 before ``begin_round``.
* `IterativeSchedule`: Sub-FedAvg's rule (Vahidian et al., 2021): each step
  prunes ``step_fraction`` of the surviving weights,
  ``s' = min(target, 1 - (1 - s) (1 - p))``, capped to land exactly on the
  target. ``s(r)`` is the sparsity after ``r + 1`` steps from 0; clients use
  `IterativeSchedule.next_sparsity` from their own current sparsity, since a
  step can be refused (accuracy guard) and clients advance at their own pace.
"""

from __future__ import annotations

import math
from typing import Any

from tffprune.pruning.masks import check_sparsity


def _check_round(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return value


class ConstantSparsity:
    """The same sparsity every round from ``begin_round`` on.

    Args:
        target_sparsity: Sparsity in [0, 1).
        begin_round: First round that prunes (earlier rounds return 0).

    Raises:
        ValueError: On a sparsity outside [0, 1) or a negative round.
    """

    def __init__(self, target_sparsity: float, begin_round: int = 0) -> None:
        self.target_sparsity = check_sparsity(target_sparsity)
        self.begin_round = _check_round("begin_round", begin_round)

    @property
    def final_sparsity(self) -> float:
        """Sparsity the schedule ends at."""
        return self.target_sparsity

    def __call__(self, round_number: int) -> float:
        """Sparsity in effect at ``round_number``."""
        _check_round("round_number", round_number)
        return self.target_sparsity if round_number >= self.begin_round else 0.0

    def get_config(self) -> dict[str, Any]:
        """Serializable configuration."""
        return {
            "class_name": "ConstantSparsity",
            "config": {
                "target_sparsity": self.target_sparsity,
                "begin_round": self.begin_round,
            },
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ConstantSparsity:
        """Rebuilds from `get_config`'s ``config`` entry."""
        return cls(**config)


class PolynomialDecay:
    """tfmot's polynomial-decay schedule, over rounds.

    Args:
        initial_sparsity: Sparsity at ``begin_round``, in [0, 1).
        final_sparsity: Sparsity from ``end_round`` on, in [0, 1).
        begin_round: First round that prunes.
        end_round: Round at which ``final_sparsity`` is reached
            (> ``begin_round``).
        power: Exponent of the decay (tfmot's default 3).
        frequency: Sparsity changes every this many rounds (>= 1).

    Raises:
        ValueError: On invalid sparsities, rounds, power or frequency.
    """

    def __init__(
        self,
        initial_sparsity: float,
        final_sparsity: float,
        begin_round: int,
        end_round: int,
        power: float = 3.0,
        frequency: int = 1,
    ) -> None:
        self.initial_sparsity = check_sparsity(initial_sparsity)
        self.final_sparsity = check_sparsity(final_sparsity)
        self.begin_round = _check_round("begin_round", begin_round)
        self.end_round = _check_round("end_round", end_round)
        if self.end_round <= self.begin_round:
            raise ValueError(
                f"end_round must be > begin_round, got end_round={end_round}, "
                f"begin_round={begin_round}"
            )
        if not power > 0:
            raise ValueError(f"power must be > 0, got {power}")
        self.power = float(power)
        if not isinstance(frequency, int) or frequency < 1:
            raise ValueError(f"frequency must be an integer >= 1, got {frequency!r}")
        self.frequency = frequency

    def __call__(self, round_number: int) -> float:
        """Sparsity in effect at ``round_number``."""
        _check_round("round_number", round_number)
        if round_number < self.begin_round:
            return 0.0
        span = self.end_round - self.begin_round
        elapsed = min(round_number, self.end_round) - self.begin_round
        if round_number < self.end_round:
            elapsed = self.frequency * (elapsed // self.frequency)
        progress = 1.0 - elapsed / span
        return (
            self.final_sparsity
            + (self.initial_sparsity - self.final_sparsity) * progress**self.power
        )

    def get_config(self) -> dict[str, Any]:
        """Serializable configuration."""
        return {
            "class_name": "PolynomialDecay",
            "config": {
                "initial_sparsity": self.initial_sparsity,
                "final_sparsity": self.final_sparsity,
                "begin_round": self.begin_round,
                "end_round": self.end_round,
                "power": self.power,
                "frequency": self.frequency,
            },
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PolynomialDecay:
        """Rebuilds from `get_config`'s ``config`` entry."""
        return cls(**config)


class IterativeSchedule:
    """Sub-FedAvg's iterative rule: prune a share of the survivors per step.

    Args:
        target_sparsity: Sparsity to stop at, in [0, 1).
        step_fraction: Share ``p`` of the surviving weights pruned per step, in
            (0, 1]; Sub-FedAvg's default is 0.1.

    Raises:
        ValueError: On an invalid sparsity or step fraction.
    """

    def __init__(self, target_sparsity: float, step_fraction: float = 0.1) -> None:
        self.target_sparsity = check_sparsity(target_sparsity)
        if not 0.0 < step_fraction <= 1.0:
            raise ValueError(f"step_fraction must be in (0, 1], got {step_fraction}")
        self.step_fraction = float(step_fraction)

    @property
    def final_sparsity(self) -> float:
        """Sparsity the schedule ends at."""
        return self.target_sparsity

    def next_sparsity(self, current_sparsity: float) -> float:
        """Sparsity after one more step from ``current_sparsity``, capped."""
        current = check_sparsity(current_sparsity)
        if current >= self.target_sparsity:
            return current
        return min(
            self.target_sparsity, 1.0 - (1.0 - current) * (1.0 - self.step_fraction)
        )

    def steps_to_target(self) -> int:
        """Steps from 0 to the target (the last one capped)."""
        if self.target_sparsity == 0.0:
            return 0
        if self.step_fraction == 1.0:
            return 1
        keep = 1.0 - self.target_sparsity
        return math.ceil(math.log(keep) / math.log(1.0 - self.step_fraction) - 1e-12)

    def __call__(self, round_number: int) -> float:
        """Sparsity after ``round_number + 1`` accepted steps from 0."""
        _check_round("round_number", round_number)
        if self.target_sparsity == 0.0:
            return 0.0
        uncapped = 1.0 - (1.0 - self.step_fraction) ** (round_number + 1)
        return min(self.target_sparsity, uncapped)

    def get_config(self) -> dict[str, Any]:
        """Serializable configuration."""
        return {
            "class_name": "IterativeSchedule",
            "config": {
                "target_sparsity": self.target_sparsity,
                "step_fraction": self.step_fraction,
            },
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> IterativeSchedule:
        """Rebuilds from `get_config`'s ``config`` entry."""
        return cls(**config)


SCHEDULES = {
    "constant": ConstantSparsity,
    "polynomial": PolynomialDecay,
    "iterative": IterativeSchedule,
}

Schedule = ConstantSparsity | PolynomialDecay | IterativeSchedule


def schedule_from_config(config: dict[str, Any]) -> Schedule:
    """Rebuilds any schedule from its ``get_config()`` output.

    Raises:
        ValueError: If the class name is unknown or the config is invalid.
    """
    classes = {cls.__name__: cls for cls in SCHEDULES.values()}
    name = config.get("class_name")
    if name not in classes:
        raise ValueError(
            f"unknown schedule class {name!r}; expected one of {', '.join(classes)}"
        )
    try:
        return classes[name].from_config(dict(config.get("config", {})))
    except TypeError as error:
        raise ValueError(f"invalid {name} config: {error}") from None


def build_schedule(name: str, target_sparsity: float, num_rounds: int) -> Schedule:
    """The named schedule reaching ``target_sparsity`` over ``num_rounds`` rounds.

    ``constant`` prunes to the target from round 0; ``polynomial`` decays from 0
    to the target over the first half of the rounds (at least one round);
    ``iterative`` is Sub-FedAvg's rule with p = 0.1.

    Raises:
        ValueError: On an unknown name or invalid values.
    """
    if name == "constant":
        return ConstantSparsity(target_sparsity)
    if name == "polynomial":
        return PolynomialDecay(0.0, target_sparsity, 0, max(1, num_rounds // 2))
    if name == "iterative":
        return IterativeSchedule(target_sparsity)
    raise ValueError(
        f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}"
    )

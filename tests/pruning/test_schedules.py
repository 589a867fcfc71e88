import pytest

from tffprune.pruning import (
    ConstantSparsity,
    IterativeSchedule,
    PolynomialDecay,
    build_schedule,
    schedule_from_config,
)


def test_constant_sparsity():
    schedule = ConstantSparsity(0.6, begin_round=2)

    assert [schedule(r) for r in range(4)] == [0.0, 0.0, 0.6, 0.6]


def test_polynomial_decay_matches_tfmot_formula():
    schedule = PolynomialDecay(0.0, 0.8, begin_round=0, end_round=4, power=3)

    # s(r) = 0.8 + (0 - 0.8) * (1 - r / 4) ** 3
    expected = [0.0, 0.8 - 0.8 * 0.75**3, 0.8 - 0.8 * 0.5**3, 0.8 - 0.8 * 0.25**3, 0.8]
    assert [schedule(r) for r in range(5)] == pytest.approx(expected)
    assert schedule(10) == pytest.approx(0.8)


def test_polynomial_decay_frequency_holds_between_updates():
    schedule = PolynomialDecay(
        0.2, 0.6, begin_round=1, end_round=5, power=1, frequency=2
    )

    # Updates at rounds 1, 3 and (end) 5; linear from 0.2 to 0.6.
    assert [schedule(r) for r in range(7)] == pytest.approx(
        [0.0, 0.2, 0.2, 0.4, 0.4, 0.6, 0.6]
    )


def test_iterative_schedule_caps_at_target():
    schedule = IterativeSchedule(0.3, step_fraction=0.1)

    # 0.1, 0.19, 0.271, then capped at 0.3
    assert [schedule(r) for r in range(5)] == pytest.approx(
        [0.1, 0.19, 0.271, 0.3, 0.3]
    )
    assert schedule.next_sparsity(0.271) == pytest.approx(0.3)
    assert schedule.next_sparsity(0.3) == 0.3
    assert schedule.steps_to_target() == 4


@pytest.mark.parametrize(
    "schedule",
    [
        ConstantSparsity(0.5, 3),
        PolynomialDecay(0.1, 0.9, 2, 9, power=2.0, frequency=3),
        IterativeSchedule(0.8, 0.2),
    ],
)
def test_config_round_trip(schedule):
    rebuilt = schedule_from_config(schedule.get_config())

    assert type(rebuilt) is type(schedule)
    assert rebuilt.get_config() == schedule.get_config()
    assert [rebuilt(r) for r in range(12)] == [schedule(r) for r in range(12)]


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: ConstantSparsity(1.2), r"sparsity must be in \[0, 1\), got 1.2"),
        (lambda: ConstantSparsity(0.5, begin_round=-1), "begin_round must be"),
        (lambda: PolynomialDecay(0.0, 0.5, 5, 5), "end_round must be > begin_round"),
        (lambda: PolynomialDecay(0.0, 0.5, 0, 5, frequency=0), "frequency must be"),
        (lambda: IterativeSchedule(0.5, step_fraction=0.0), "step_fraction must be"),
        (lambda: schedule_from_config({"class_name": "Cosine"}), "unknown schedule"),
        (lambda: build_schedule("cosine", 0.5, 10), "unknown schedule 'cosine'"),
    ],
)
def test_constructor_validation(make, message):
    with pytest.raises(ValueError, match=message):
        make()

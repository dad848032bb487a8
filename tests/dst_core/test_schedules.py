import math

import pytest

from dst_core.errors import ConfigError
from dst_core.schedules import SCHEDULES, UpdateSchedule, drop_schedule


def test_constant():
    s = drop_schedule("constant", 0.3, 1000)
    assert [s(0), s(500), s(1000)] == [0.3, 0.3, 0.3]


def test_cosine_start_middle_end():
    s = drop_schedule("cosine", 0.5, 1000, eta_min=0.005)
    assert s(0) == pytest.approx(0.5)
    assert s(500) == pytest.approx(0.005 + 0.495 / 2)  # cos(pi/2) = 0
    assert s(250) == pytest.approx(0.005 + 0.495 * (1 + math.cos(math.pi / 4)) / 2)
    assert s(1000) == pytest.approx(0.005)
    assert s(2000) == pytest.approx(0.005)  # clamped after the end


def test_linear_start_middle_end():
    s = drop_schedule("linear", 0.5, 100, eta_min=0.0)
    assert [s(0), s(50), s(100)] == pytest.approx([0.5, 0.25, 0.0])


def test_linear_paper_code_steps_down_by_one_percent_every_600_steps():
    s = drop_schedule("linear_paper_code", 0.5, 35_200, eta_min=0.3)  # eta_min and T play no part
    assert [s(0), s(599), s(600), s(1199), s(1200)] == pytest.approx([0.5, 0.5, 0.495, 0.495, 0.49005])
    assert s(35_200) == pytest.approx(0.5 * 0.99 ** 58)


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_schedules_are_pure_and_in_range(name):
    s = drop_schedule(name, 0.4, 300)
    values = [s(t) for t in range(0, 301, 10)]
    assert values == [s(t) for t in range(0, 301, 10)]
    assert all(0 <= v <= 0.4 for v in values)


def test_update_schedule():
    u = UpdateSchedule(period=100, stop_step=350)
    assert [t for t in range(0, 1000) if u(t)] == [100, 200, 300]
    assert [t for t in range(0, 1000) if UpdateSchedule(400, 1000)(t)] == [400, 800]


def test_bad_values():
    with pytest.raises(ConfigError, match="drop_fraction: got 1.5"):
        drop_schedule("cosine", 1.5, 100)
    with pytest.raises(ConfigError, match="update_period: got 0"):
        UpdateSchedule(0, 100)

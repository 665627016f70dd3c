"""The loop policies (fusionkit.optimisation): schedules, iterate averaging, stopping rules, precision, Ctrl-C."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fusionkit
from fusionkit.optimisation import (IterateAverage, Loop, PlateauRule, autocast, bf16_supported, lr_factor,
                                    resolve_precision)
from fusionkit.spec import StopSpec

from conftest import QUICK


def test_constant_and_cosine_schedules_with_warmup():
    assert [lr_factor("constant", i, 10, 0, 0.0) for i in (1, 5, 10)] == [1.0, 1.0, 1.0]
    assert [lr_factor("constant", i, 10, 4, 0.0) for i in (1, 2, 4, 5)] == [0.25, 0.5, 1.0, 1.0]
    # cosine: 1 right after the warm-up, final at the last iteration, the midpoint halfway in between
    assert lr_factor("cosine", 4, 104, 4, 0.1) == pytest.approx(1.0)
    assert lr_factor("cosine", 104, 104, 4, 0.1) == pytest.approx(0.1)
    assert lr_factor("cosine", 54, 104, 4, 0.0) == pytest.approx(0.5)
    values = [lr_factor("cosine", i, 50, 0, 0.0) for i in range(1, 51)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_iterate_average_is_a_bias_corrected_exponential_mean():
    avg = IterateAverage(0.5)
    assert avg.value() is None
    for v in (1.0, 3.0):
        avg.update(torch.tensor([v]))
    # weights 0.5 * 1 + 1 * 3 over 1.5 (bias-corrected): (0.25 + 1.5) / 0.75
    expected = (0.5 * 0.5 * 1.0 + 0.5 * 3.0) / (1 - 0.5 ** 2)
    assert avg.value().item() == pytest.approx(expected)
    last = IterateAverage(0.0)
    last.update(torch.tensor([1.0]))
    last.update(torch.tensor([7.0]))
    assert last.value().item() == 7.0


def test_plateau_rule_compares_consecutive_window_means():
    rule = PlateauRule(window=10, min_delta=0.01, min_iterations=25)
    assert not rule.should_stop(10, 1.0)          # no previous window yet
    assert not rule.should_stop(20, 0.999)        # improvement 0.1 % < 1 %, but before min_iterations
    assert not rule.should_stop(30, 0.9)          # 10 % better: go on
    assert rule.should_stop(40, 0.899)            # 0.1 % better: plateau
    assert rule.due(40) and not rule.due(41)


class _Quadratic:
    """A tiny optimisation whose loss is known: fit a scalar to 3 with Adam."""

    def __init__(self):
        self.p = torch.nn.Parameter(torch.zeros(1))
        self.opt = torch.optim.Adam([self.p], lr=0.1)

    def step(self, it):
        self.opt.zero_grad()
        loss = ((self.p - 3.0) ** 2).sum()
        loss.backward()
        self.opt.step()
        return loss.detach().reshape(1)


def test_loop_runs_every_iteration_without_a_rule_and_records():
    q = _Quadratic()
    seen = []
    decision = Loop(q.opt, 40, lr=0.1, records=4).run(q.step, lambda it, v, s: seen.append(it))
    assert decision.as_dict() == {"reason": "completed", "iteration": 40, "planned": 40}
    assert seen == [10, 20, 30, 40]


def test_loop_stops_on_a_plateau_and_says_when():
    q = _Quadratic()
    stop = StopSpec(rule="plateau", window=20, min_delta=0.05, min_iterations=40)
    decision = Loop(q.opt, 2000, lr=0.1, stop=stop).run(q.step, lambda *a: None)
    assert decision.reason == "plateau" and 40 <= decision.iteration < 2000
    assert decision.iteration % 20 == 0
    assert abs(q.p.item() - 3.0) < 0.1


def test_loop_schedule_sets_the_optimiser_rate():
    q = _Quadratic()
    rates = []

    def step(it):
        rates.append(q.opt.param_groups[0]["lr"])
        return q.step(it)

    Loop(q.opt, 10, lr=0.1, schedule="cosine", warmup=0.2, final_lr=0.0).run(step, lambda *a: None)
    assert rates[0] == pytest.approx(0.05) and rates[1] == pytest.approx(0.1)
    assert rates[-1] == pytest.approx(0.0, abs=1e-12)


def test_loop_turns_ctrl_c_into_a_recorded_stop():
    q = _Quadratic()

    def step(it):
        if it == 7:
            raise KeyboardInterrupt
        return q.step(it)

    decision = Loop(q.opt, 100, lr=0.1).run(step, lambda *a: None)
    assert (decision.reason, decision.iteration) == ("interrupted", 6)


def test_loop_reports_a_non_finite_loss():
    q = _Quadratic()
    decision = Loop(q.opt, 50, lr=0.1, records=50).run(lambda it: torch.tensor([math.nan]), lambda *a: None)
    assert decision.reason == "non_finite" and decision.iteration == 1


def test_max_seconds_stops_the_loop():
    q = _Quadratic()
    stop = StopSpec(max_seconds=0.05)

    def slow(it):
        import time
        time.sleep(0.01)
        return q.step(it)

    decision = Loop(q.opt, 10_000, lr=0.1, stop=stop).run(slow, lambda *a: None)
    assert decision.reason == "max_seconds" and decision.iteration < 100


def test_precision_auto_follows_the_hardware():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("auto", cpu) == ("bf16" if bf16_supported(cpu) else "fp32")
    x = torch.rand(1, 2, 8, 8)
    conv = torch.nn.Conv2d(2, 2, 3)
    with autocast("fp32", cpu):
        assert conv(x).dtype == torch.float32
    with autocast("bf16", cpu):
        assert conv(x).dtype == torch.bfloat16


def test_a_run_records_why_each_loop_stopped(pair):
    r = fusionkit.run({"name": "t"}, [*QUICK, "stop.rule=plateau", "stop.window=10", "stop.min_delta=0.5",
                                      "iterations=200"], inputs=pair.inputs, write=False)
    stops = r.manifest["stops"]
    assert stops["decision_embedding"] == {"reason": "completed", "iteration": 20, "planned": 20}
    assert stops["fusion"]["reason"] == "plateau" and stops["fusion"]["iteration"] < 200
    assert r.outcome.loss_history[-1]["iteration"] == stops["fusion"]["iteration"]


def test_averaged_output_differs_from_the_last_iterate_and_stays_in_range(pair):
    last = fusionkit.run({"name": "t"}, QUICK, inputs=pair.inputs, write=False).fused
    avg = fusionkit.run({"name": "t"}, [*QUICK, "output_average=0.9"], inputs=pair.inputs, write=False).fused
    assert not np.array_equal(last, avg)
    assert avg.min() >= 0 and avg.max() <= 1
    assert np.abs(last - avg).mean() < 0.05      # the same optimisation, only averaged

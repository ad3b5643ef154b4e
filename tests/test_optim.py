"""The learning-rate schedule, including a resume that extends training."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from inktrace_train.train.optim import WarmupCosine


def lrs(total, warmup, steps, restart=None):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosine(opt, total_steps=total, warmup_steps=warmup, final_lr_ratio=0.1)
    sched.restart = restart
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_then_cosine_to_the_final_ratio():
    values = lrs(total=100, warmup=10, steps=101)
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0) and values[100] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(values[10:]))


def test_extending_on_resume_continues_without_a_jump():
    reached = lrs(total=100, warmup=10, steps=61)[60]  # a 100-step run, resumed at step 60 ...
    extended = lrs(total=200, warmup=10, steps=201, restart=(60, reached))  # ... to run 200 steps
    assert extended[60] == pytest.approx(reached)  # the lr continues from where it was
    assert extended[200] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(extended[60:]))
    assert not math.isclose(extended[61], lrs(total=200, warmup=10, steps=62)[61])


def test_a_resumed_extension_keeps_its_restart_point_across_later_resumes():
    """Extend 100 -> 200 steps at step 60, then resume again at step 120 without a change: the
    lr must go on exactly as in the run that was never stopped."""

    def scheduler(total):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        return opt, WarmupCosine(opt, total_steps=total, warmup_steps=10, final_lr_ratio=0.1)

    def run(opt, sched, steps):
        for _ in range(steps):
            opt.step()
            sched.step()

    opt, sched = scheduler(100)
    run(opt, sched, 60)
    opt, extended = scheduler(200)
    extended.load_state_dict(sched.state_dict())  # the horizon changed: restart from the lr reached
    assert extended.restart == (60, pytest.approx(sched.get_last_lr()[0]))
    run(opt, extended, 60)
    opt2, again = scheduler(200)
    again.load_state_dict(extended.state_dict())  # same horizon: the restart point comes back with it
    run(opt, extended, 30)
    run(opt2, again, 30)
    assert again.get_last_lr() == extended.get_last_lr()

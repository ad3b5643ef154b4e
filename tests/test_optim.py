"""The learning-rate schedule, including a resume that extends training."""

from __future__ import annotations

import math

import pytest
import torch

from inktrace_train.optim import WarmupCosine


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
    assert all(a >= b for a, b in zip(values[10:], values[11:]))


def test_extending_on_resume_continues_without_a_jump():
    reached = lrs(total=100, warmup=10, steps=61)[60]  # a 100-step run, resumed at step 60 ...
    extended = lrs(total=200, warmup=10, steps=201, restart=(60, reached))  # ... to run 200 steps
    assert extended[60] == pytest.approx(reached)  # the lr continues from where it was
    assert extended[200] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(extended[60:], extended[61:]))
    assert not math.isclose(extended[61], lrs(total=200, warmup=10, steps=62)[61])

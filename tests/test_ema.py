"""``training.ema_decay``: the moving average of the weights follows its formula, is what
validation scores and what a resume continues exactly, and is the model that publish, predict and
``stage.init_from`` read."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from helpers import cli
from inktrace_train.checkpoint.store import load_checkpoint
from inktrace_train.evaluation.predictor import TorchMaps
from inktrace_train.run.rundir import RunDir
from inktrace_train.train.build import build_trainer
from inktrace_train.train.ema import WeightAverage
from inktrace_train.train.transfer import init_from
from test_trainer import CPU, tiny_config


def test_the_average_follows_its_formula_and_copies_integer_buffers():
    model = nn.BatchNorm1d(3)  # float weights and an integer buffer (num_batches_tracked)
    average = WeightAverage(model, decay=0.5)
    start = model.weight.detach().clone()
    expected = start.clone()
    for n in range(1, 4):
        with torch.no_grad():
            model.weight.add_(1.0)
            model.num_batches_tracked += 1
        average.update()
        decay = min(0.5, (1 + n) / (10 + n))  # 0.18, 0.25, 0.31, then 0.5 from n = 8
        expected = decay * expected + (1 - decay) * model.weight.detach()
        torch.testing.assert_close(average.module.weight, expected, rtol=0, atol=1e-6)
    assert average.module.num_batches_tracked.item() == 3 and average.updates == 3
    assert not average.module.weight.requires_grad and not average.module.training

    restored = WeightAverage(nn.BatchNorm1d(3), decay=0.9)
    restored.load_state_dict(average.state_dict())
    assert torch.equal(restored.module.weight, average.module.weight) and restored.updates == 3
    assert restored.decay == 0.9  # the configured decay, not the saved one


def trained(tmp_path, epochs: int, **training):
    run = RunDir(tmp_path)
    trainer = build_trainer(tiny_config(epochs=epochs, **training), run, CPU)
    trainer.fit()
    return trainer, run


def test_validation_scores_the_average_and_a_resume_continues_it_exactly(tmp_path):
    whole, run = trained(tmp_path / "whole", epochs=2, ema_decay=0.9)
    ckpt = load_checkpoint(run.checkpoint_dir("structural") / "checkpoint_latest.pth")
    assert ckpt.ema_state_dict["updates"] == whole.state.global_step == 6
    assert any(not torch.equal(v, ckpt.model_state_dict[k]) for k, v in ckpt.ema_state_dict["weights"].items())
    assert ckpt.inference_weights() is ckpt.ema_state_dict["weights"]

    scored = whole.evaluate()  # validation losses and metrics
    assert scored == whole.last_metrics  # the last epoch's validation scored the average ...
    whole.ema.module.load_state_dict(whole.module.state_dict())
    assert whole.evaluate()["loss_total"] != scored["loss_total"]  # ... not the trained weights

    _, cut = trained(tmp_path / "cut", epochs=1, ema_decay=0.9)
    saved = load_checkpoint(cut.checkpoint_dir("structural") / "checkpoint_latest.pth")
    resumed = build_trainer(tiny_config(epochs=2, ema_decay=0.9), cut, CPU, saved)
    assert resumed.ema.updates == 3
    resumed.fit()
    end = load_checkpoint(cut.checkpoint_dir("structural") / "checkpoint_latest.pth")
    for name, value in ckpt.ema_state_dict["weights"].items():
        assert torch.equal(end.ema_state_dict["weights"][name], value), name


def test_turned_on_at_a_resume_the_average_starts_from_the_saved_weights(tmp_path, caplog):
    _, run = trained(tmp_path, epochs=1)
    saved = load_checkpoint(run.checkpoint_dir("structural") / "checkpoint_latest.pth")
    assert saved.ema_state_dict is None and saved.inference_weights() is saved.model_state_dict
    resumed = build_trainer(tiny_config(epochs=2, ema_decay=0.99), run, CPU, saved)
    assert "no weight average" in caplog.text and resumed.ema.updates == 0
    for name, value in resumed.ema.module.state_dict().items():
        assert torch.equal(value, saved.model_state_dict[name]), name

    resumed.fit()
    averaged = load_checkpoint(run.checkpoint_dir("structural") / "checkpoint_latest.pth")
    caplog.clear()
    build_trainer(tiny_config(epochs=3), run, CPU, averaged)  # turned off again: said, not silent
    assert "with training.ema_decay=0 it is dropped" in caplog.text


@pytest.fixture(scope="module")
def averaged(tmp_path_factory):
    """A checkpoint whose weight average differs from its trained weights."""
    _, run = trained(tmp_path_factory.mktemp("ema"), epochs=1, ema_decay=0.9)
    return run.checkpoint_dir("structural") / "checkpoint_best.pth"


def test_publish_predict_and_init_from_read_the_average(averaged, tmp_path):
    ckpt = load_checkpoint(averaged)
    proc = cli(["publish", str(averaged), "model.pth"], cwd=tmp_path, module="inktrace_train.cli.ckpt")
    assert proc.returncode == 0, proc.stderr
    published = load_checkpoint(tmp_path / "model.pth")
    assert published.ema_state_dict is None
    for name, value in ckpt.ema_state_dict["weights"].items():
        assert torch.equal(published.model_state_dict[name], value), name

    maps = TorchMaps(str(averaged))
    for name, value in maps.graph.model.state_dict().items():
        assert torch.equal(value, ckpt.ema_state_dict["weights"][name]), name

    cfg = tiny_config()
    model = build_trainer(replace(cfg, training=replace(cfg.training, epochs=1)), RunDir(tmp_path / "t"), CPU).module
    init_from(model, str(averaged), "structural", ckpt.config["model"], 64, [])
    for name, value in model.state_dict().items():
        assert torch.equal(value, ckpt.ema_state_dict["weights"][name]), name

    shown = cli(["inspect", str(averaged)], cwd=tmp_path, module="inktrace_train.cli.ckpt")
    assert "weight avg:    decay 0.9, 3 updates" in shown.stdout

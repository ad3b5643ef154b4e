"""One plain-PyTorch trainer for every stage.

A stage differs only by the objects handed in (heads, loss, masking, metric);
the loop is the same. The training step never waits for the device: its losses are
recorded where they can be read at no cost (:mod:`.steplog`) and read every ``log_every_n_steps``.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import closing, nullcontext
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from inktrace_train.checkpoint.convert import completed_for_resume
from inktrace_train.checkpoint.store import BackgroundSaver, Checkpoint, CheckpointError, CheckpointManager
from inktrace_train.errors import RunFailed, first_line
from inktrace_train.run.rundir import now_iso
from inktrace_train.run.signals import (
    Preempted,
    StopRequest,
    kill_workers_left_at_exit,
    worker_deaths_at_next_batch,
)
from inktrace_train.train.distributed import Distributed
from inktrace_train.train.ema import WeightAverage
from inktrace_train.train.logger import RunLogger
from inktrace_train.train.optim import WarmupCosine
from inktrace_train.train.state import Generators, Stateful, TrainState
from inktrace_train.train.steplog import StepLog

log = logging.getLogger(__name__)


class NonFiniteLoss(RunFailed):
    """A NaN or infinite loss: the stage stops before any checkpoint holds what followed."""


class WorkerLost(Exception):
    """A data-loader worker died (a signal to the process group, the OOM killer)."""


def batches(loader: DataLoader) -> Iterator[Dict[str, torch.Tensor]]:
    """The loader's batches; a worker's death surfaces as :class:`WorkerLost`, never as an error
    of the training step."""
    try:
        it = iter(loader)
    except WORKER_DEATH as e:
        raise worker_lost(e) from None
    if getattr(loader, "num_workers", 0):  # a death is reported here, by next(), never mid-step
        worker_deaths_at_next_batch()
        kill_workers_left_at_exit()
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except WORKER_DEATH as e:
            raise worker_lost(e) from None
        yield batch


# How the loader reports a dead worker: by name once the process is reaped ("DataLoader worker
# (pid ...) exited unexpectedly"), or, when the worker dies while its batch is being received, as
# the broken connection that hands the batch's shared memory over.
WORKER_DEATH = (RuntimeError, ConnectionError, EOFError)


def worker_lost(e: BaseException) -> BaseException:
    """``e`` as :class:`WorkerLost`; as it is if a worker's own code raised it (the loader then
    re-raises it "in DataLoader worker process N"): a dataset's bug is shown with its traceback."""
    message = first_line(e)
    if "in DataLoader worker process" in message:
        return e
    if not isinstance(e, RuntimeError):
        kind = type(e).__name__
        message = f"its batch broke off: {kind}" + ("" if message == kind else f": {message}")
    return WorkerLost(message)


class Trainer:
    """Trains one stage: epochs of micro-batches, validation, checkpoints, logs.

    Args:
        model, loss_fn, optimizer, scheduler: the objects to train with.
        train_loader: yields batches; its ``sampler`` has ``epoch`` and ``start`` attributes.
        val_loader: the fixed validation set.
        new_metrics: builds a fresh metric accumulator (``update``/``compute``).
        select_metric: maps the validation metrics to the one number that picks the best checkpoint.
        checkpoints: the stage's checkpoint manager; None on the data-parallel ranks that do not write.
        logger: TensorBoard and console logging.
        dist: this process's rank and device; the model is wrapped for data parallelism here.
        stop: set by SIGTERM, SIGUSR1 or Ctrl-C: checked after every optimizer step (a flag read);
            the ranks of a data-parallel job agree on it at each log interval.
        config, metadata: constant entries of every checkpoint (the resolved config as plain
            containers; stage, run id, versions).
        amp_dtype: autocast dtype, or None for full precision.
        compile: train through ``torch.compile`` (checkpoints still hold the plain module's keys).
        channels_last: the model is NHWC; its input batches are made so too.
        render: draws each batch's image and targets on the device from the centerlines the
            loaders hand over (``data.renderer=device``); None when the loaders draw them.
        ema_decay: keep a moving average of the weights (:mod:`.ema`), validated and saved
            beside them; 0: none.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: WarmupCosine,
        train_loader: DataLoader,
        val_loader: DataLoader,
        new_metrics: Callable[[], Any],
        select_metric: Callable[[Dict[str, float]], float],
        checkpoints: Optional[CheckpointManager],
        logger: RunLogger,
        *,
        config: Dict[str, Any],
        metadata: Dict[str, Any],
        dist: Distributed,
        epochs: int,
        grad_accum_steps: int,
        grad_clip: float,
        log_every_n_steps: int,
        save_every_n_steps: Optional[int],
        mask_ratio: float,
        amp_dtype: Optional[torch.dtype],
        stop: Optional[StopRequest] = None,
        compile: bool = False,
        channels_last: bool = False,
        render: Optional[Callable[[Dict[str, torch.Tensor]], Dict[str, torch.Tensor]]] = None,
        ema_decay: float,
    ):
        # Save and validate the first (plain keys, eager), train the second (DDP, compiled).
        self.module, self.model = model, dist.wrap(model)
        if compile:
            self.model = torch.compile(self.model)
        self.input_format = torch.channels_last if channels_last else torch.contiguous_format
        self.render = render
        self.loss_fn, self.dist = loss_fn, dist
        self.optimizer, self.scheduler = optimizer, scheduler
        self.train_loader, self.val_loader = train_loader, val_loader
        self.new_metrics, self.select_metric = new_metrics, select_metric
        self.saver = BackgroundSaver(checkpoints) if checkpoints else None  # writes while training goes on
        self.logger = logger
        self.config, self.metadata = config, metadata
        self.device, self.epochs = dist.device, epochs
        self.grad_accum_steps, self.log_every_n_steps = grad_accum_steps, log_every_n_steps
        self.save_every_n_steps = save_every_n_steps
        self.max_grad_norm = grad_clip if grad_clip > 0 else math.inf
        self.mask_ratio, self.amp_dtype = mask_ratio, amp_dtype
        self.stop = stop or StopRequest()
        # made once, entered at every step and validation (never nested)
        self.autocast = torch.autocast(self.device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp_dtype == torch.float16)
        self.state = TrainState()
        self.ema = WeightAverage(model, ema_decay) if ema_decay else None
        self.last_metric: Optional[float] = None  # the latest validation metric, for mid-epoch saves
        self.last_metrics: Dict[str, float] = {}  # every metric of the latest validation
        self.losses = self.step_log()  # every micro-batch's loss terms
        self.norms = self.step_log(["grad_norm"])  # every optimizer step's gradient norm
        self.checked_step = 0  # the optimizer step of the last non-finite check
        self.stepped_at = 0  # micro-batches of this epoch up to the last optimizer step
        self.logged_at = (time.perf_counter(), 0)  # (time, micro-batches of the epoch) of the last train log
        self.steps_per_epoch = len(train_loader)

    def step_log(self, names: Sequence[str] = ()) -> StepLog:
        """A log of values read once per interval, summed over the ranks."""
        return StepLog(names, reduce=self.dist.all_reduce_sum if self.dist.active else None)

    # --- the step -------------------------------------------------------------------
    def to_device(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The batch as the model takes it: on the device, drawn there (``data.renderer=device``),
        in the model's memory format."""
        if self.device.type != "cpu":
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        if self.render is not None:
            batch = self.render(batch)
        if self.input_format is torch.channels_last:
            batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
        return batch

    def train_step(self, batch: Dict[str, torch.Tensor]) -> bool:
        """One micro-batch; every ``grad_accum_steps`` (and at epoch end) an optimizer step.
        Returns whether it stepped."""
        done = self.state.step_in_epoch = self.state.step_in_epoch + 1
        steps = done % self.grad_accum_steps == 0 or done == self.steps_per_epoch
        with self.dist.sync_gradients(self.model, steps):  # ranks average gradients only when stepping
            self.scaler.scale(self.forward_loss(batch)).backward()  # the scaler does nothing unless fp16
        if not steps:
            return False
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema:
            self.ema.update()
        self.state.global_step += 1
        self.stepped_at = done
        self.norms.add(grad_norm)
        return True

    def forward_loss(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        """The micro-batch's loss to backpropagate (divided for accumulation); its terms are
        recorded. The outputs and the loss dict are freed on return, before the backward pass
        and the optimizer step."""
        with self.autocast:
            losses = self.loss_fn(self.model(batch["image"]), batch)
        self.losses.add(losses)
        total = losses["total"]
        return total if self.grad_accum_steps == 1 else total / self.grad_accum_steps

    # --- the loop -------------------------------------------------------------------
    def fit(self) -> Optional[float]:
        """Train the remaining epochs; returns the best validation metric of the stage."""
        self.stop.training = True
        try:
            for epoch in range(self.state.epoch, self.epochs):
                self.train_epoch(epoch)
                self.check_finite()  # before validating (and saving) what the epoch trained
                metrics = self.evaluate()
                self.state.epoch, self.state.step_in_epoch = epoch + 1, 0
                self.end_epoch(metrics)
        except WorkerLost as e:
            self.save_after_lost_worker(str(e))
        finally:
            self.stop.training = False
        self.wait_for_saves()  # the stage is done only once its checkpoints are on disk
        return self.state.best_metric

    def train_epoch(self, epoch: int) -> None:
        """The epoch's remaining micro-batches. Logging, stopping and saving are looked at only
        after an optimizer step."""
        self.model.train()
        sampler, state = self.train_loader.sampler, self.state
        sampler.epoch, sampler.start_batch = epoch, state.step_in_epoch
        self.stepped_at = state.step_in_epoch
        bar = self.logger.progress(
            total=self.steps_per_epoch, initial=state.step_in_epoch, desc=f"epoch {epoch + 1}/{self.epochs}"
        )
        log_every, save_every = self.log_every_n_steps, self.save_every_n_steps or 0
        self.logged_at = (time.perf_counter(), state.step_in_epoch)
        # The bar is closed (its line cleared) however the epoch ends, before any stop message; the
        # batch stream too, so a stop does not keep the loader's iterator alive in its traceback.
        with bar, closing(batches(self.train_loader)) as stream:
            for batch in stream:
                stepped = self.train_step(self.to_device(batch))
                bar.update(1)
                if not stepped:
                    continue  # mid-accumulation: nothing to log or save
                if self.stop.requested and not self.dist.active:  # a flag read: no sync
                    self.log_train(bar)  # the steps since the last log reach the curves first
                    self.stop_now()
                if state.global_step % log_every == 0:
                    self.log_train(bar)
                    self.stop_if_requested()
                    self.dist.rebalance()
                if save_every and state.global_step % save_every == 0 and state.step_in_epoch < self.steps_per_epoch:
                    self.save(self.last_metric, is_best=False)
            self.log_train(bar)  # the rest of the epoch, so short runs get train curves too
        self.stop_if_requested()

    def samples_per_s(self, micro_batches: int, seconds: float) -> float:
        """This rank's training throughput (every training batch is full: the loader drops a
        last incomplete one)."""
        return micro_batches * self.train_loader.batch_size / max(seconds, 1e-9)

    def stop_if_requested(self) -> None:
        """At log intervals and epoch ends: the ranks of a data-parallel job agree whether any of
        them was asked to stop (one collective, here rather than per step), then stop together."""
        requested = self.stop.requested
        if self.dist.active:
            flag = torch.tensor([float(requested)], device=self.device)
            requested = bool(self.dist.all_reduce_sum(flag).item())
        if requested:
            self.stop_now()

    def stop_now(self) -> None:
        """Save the last completed optimizer step and raise :class:`Preempted`."""
        self.save(self.last_metric, is_best=False)
        self.wait_for_saves()
        self.dist.barrier()
        stopped = Preempted(self.stop.name, self.logger.stage, self.state.epoch + 1, self.state.global_step)
        log.warning("%s", stopped)  # into train.log too
        raise stopped

    def save_after_lost_worker(self, error: str) -> None:
        """A data-loader worker died. During a stop request that is part of the stop (a signal to
        the whole process group reached a worker before it ignored it): save and stop as asked.
        Otherwise (the OOM killer) save what is consistent, then fail in one line."""
        if self.state.step_in_epoch != self.stepped_at:  # mid-accumulation: back to the last optimizer step
            self.state.step_in_epoch = self.stepped_at
            self.optimizer.zero_grad(set_to_none=True)
        if self.dist.active:  # a save is collective: the other ranks are elsewhere
            raise RunFailed(f"{error}; the ranks cannot save together: resume from the last checkpoint")
        if self.stop.requested:
            self.stop_now()
        self.save(self.last_metric, is_best=False)
        self.wait_for_saves()
        raise RunFailed(
            f"a data-loader worker died ({error}); the checkpoint of optimizer step {self.state.global_step} "
            "is saved: resume the run (maybe with fewer data.num_workers if memory ran out)"
        )

    def check_finite(self) -> None:
        """Raise :class:`NonFiniteLoss` if a loss went NaN/inf since the last check. Called before
        every save, so no checkpoint ever holds weights trained on such a loss."""
        self._stop_if_nonfinite(self.losses.nonfinite())

    def _stop_if_nonfinite(self, found: Optional[Tuple[int, List[str]]]) -> None:
        """``found``: (micro-batches since the last check up to the first non-finite loss, its
        terms), or None: all finite, checked up to this step."""
        if found is None:
            self.checked_step = self.state.global_step
            return
        micro, terms = found
        step = self.checked_step + math.ceil(micro / self.grad_accum_steps)
        raise NonFiniteLoss(
            f"non-finite loss ({', '.join(terms)}) at optimizer step {step} of stage {self.logger.stage}: "
            f"stopped without saving, so checkpoint_latest.pth and checkpoint_best.pth keep the last finite "
            f"weights; lower training.lr (now {self.optimizer.defaults['lr']:g}) or check the data"
        )

    def save(self, metric: Optional[float], is_best: bool) -> None:
        """Write this step's checkpoint (the main rank, in the background), once the losses since
        the last one are finite."""
        self.check_finite()
        self.logger.hand_over(wait=True)
        if self.saver:
            self.saver.save(self.checkpoint(metric), is_best)

    def close(self) -> None:
        """End of the stage, however it ended: pending checkpoint writes finish, the logs close, and
        the loaders go, which shuts their workers down. The workers ignore stop signals, so
        multiprocessing's exit (SIGTERM, then a join without timeout) must not be left to do it."""
        try:
            self.wait_for_saves()
        finally:
            self.logger.close()
            self.train_loader = self.val_loader = None

    def wait_for_saves(self) -> None:
        """Until every checkpoint written so far is on disk (raising a failed write's error)."""
        if self.saver:
            self.saver.wait()

    def log_train(self, bar: tqdm) -> None:
        """The losses, gradient norms, lr and throughput since the last call (none: nothing)."""
        if not self.losses:
            return
        (since, done_then), now = self.logged_at, time.perf_counter()
        samples_per_s = self.samples_per_s(self.state.step_in_epoch - done_then, now - since)
        self.logged_at = (now, self.state.step_in_epoch)
        world = self.dist.world_size
        values, nonfinite = self.losses.read(world, check=True)  # a sync, once per log interval
        self._stop_if_nonfinite(nonfinite)
        values.update(self.norms.read(world)[0])
        values["lr"] = self.optimizer.param_groups[0]["lr"]
        values["samples_per_s"] = samples_per_s
        self.logger.scalars("train", values, self.state.global_step)
        s = self.state
        left = (self.epochs - s.epoch - 1) * self.steps_per_epoch + self.steps_per_epoch - s.step_in_epoch
        eta = left * self.train_loader.batch_size / max(samples_per_s, 1e-9)
        self.logger.progress_line(bar, s.epoch, self.epochs, s.step_in_epoch, self.steps_per_epoch, values, eta)

    @torch.no_grad()
    def evaluate(self) -> Dict[str, float]:
        """Validation: losses on the masked input, metrics on the full ink (the real task). Each
        rank scores its share with the unwrapped model, or its weight average (no collective per
        batch: shares may differ by one batch); the match counts are then summed over ranks."""
        model = self.ema.module if self.ema else self.module
        model.eval()
        metrics, losses, shown = self.new_metrics(), self.step_log(), None
        with closing(batches(self.val_loader)) as stream:
            for batch in stream:
                batch = self.to_device(batch)
                with self.autocast:
                    outputs = model(batch["image"])
                    losses.add(self.loss_fn(outputs, batch))
                    if self.mask_ratio > 0:
                        full = torch.cat([batch["ink"], torch.ones_like(batch["ink"])], dim=1)
                        outputs = model(full)
                metrics.update(outputs, batch)
                if shown is None:
                    shown = (batch, outputs)
        result = metrics.compute(reduce=self.dist.all_reduce_sum)
        result.update({f"loss_{k}": v for k, v in losses.read_uneven().items()})
        if shown:  # a rank whose share of the validation set is empty has nothing to show
            self.logger.images("val", *shown, self.state.global_step)
        return result

    def end_epoch(self, metrics: Dict[str, float]) -> None:
        self.last_metrics = metrics
        metric = self.last_metric = self.select_metric(metrics)
        is_best = self.state.improves(metric)
        if is_best:
            self.state.best_metric = metric
        self.logger.scalars("val", metrics, self.state.global_step)
        self.logger.epoch_summary(self.state.epoch, self.epochs, metric, is_best, metrics)
        self.save(metric, is_best)

    # --- checkpoint state -----------------------------------------------------------
    def components(self) -> Dict[str, Stateful]:
        """What a checkpoint gathers besides the weights and the loop's counters, by the name of
        its entry (format version 1). The scaler only where it scales (fp16), the weight average
        only where one is kept."""
        parts: Dict[str, Stateful] = {
            "optimizer_state_dict": self.optimizer,
            "scheduler_state_dict": self.scheduler,
            "rng_state": Generators(),
        }
        if self.scaler.is_enabled():
            parts["scaler_state_dict"] = self.scaler
        if self.ema:
            parts["ema_state_dict"] = self.ema
        return parts

    def checkpoint(self, metric: Optional[float]) -> Checkpoint:
        """The complete checkpoint (format version 1): every component's state."""
        return Checkpoint(
            model_state_dict=self.module.state_dict(),  # unwrapped: no "module." prefixes
            **self.state.state_dict(),
            **{name: part.state_dict() for name, part in self.components().items()},
            metric=metric,
            config=self.config,
            metadata=self.metadata,
            timestamp=now_iso(),
        )

    def restore(self, ckpt: Checkpoint) -> None:
        """Hand each component its state from ``ckpt``, to continue exactly where it was written.
        An older, converted file is first completed by :func:`convert.completed_for_resume`; what
        it lacks altogether (optimizer moments, random generators) starts fresh, with a warning."""
        self.module.load_state_dict(ckpt.model_state_dict)
        steps = math.ceil(self.steps_per_epoch / self.grad_accum_steps)  # optimizer steps per epoch
        try:
            ckpt = completed_for_resume(ckpt, steps, self.optimizer, self.scheduler, list(self.module.parameters()))
            self.state.load_state_dict({**ckpt.to_dict(), "epoch": ckpt.epoch or 0})
            for name, part in self.components().items():
                state = getattr(ckpt, name)
                if state is not None:
                    part.load_state_dict(state)
                elif name == "optimizer_state_dict":
                    log.warning("checkpoint has no optimizer state: AdamW moments start fresh")
                elif name == "ema_state_dict":
                    log.warning("checkpoint has no weight average: training.ema_decay starts one from its weights")
                    part.load_state_dict({"weights": ckpt.model_state_dict, "updates": 0})
            if ckpt.ema_state_dict and not self.ema:
                log.warning("checkpoint has a weight average: with training.ema_decay=0 it is dropped")
        except ValueError as e:  # the optimizer's groups or shapes differ
            raise CheckpointError(f"the checkpoint's optimizer state does not fit this model: {e}") from None
        self.last_metric = ckpt.metric
        epoch, global_step = self.state.epoch, self.state.global_step
        best = "none yet" if self.state.best_metric is None else f"{self.state.best_metric:.4f}"
        log.info(
            "resumed in epoch %d (%d micro-batches done), optimizer step %d, best metric %s",
            epoch + 1,
            self.state.step_in_epoch,
            global_step,
            best,
        )

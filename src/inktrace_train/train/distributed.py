"""Data parallelism over ``torch.distributed``: the process group, this process's device, and
the few collectives the trainer needs. With one process every method is a plain no-op call,
so the training code has one path.

Backend: nccl on CUDA, gloo on CPU. Each rank runs on its own device (``LOCAL_RANK``) and,
on CPU, uses its share of the machine's cores for intra-op threads.
"""

from __future__ import annotations

import logging
import os
import platform
from contextlib import nullcontext
from typing import Any, ContextManager, Dict, Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from inktrace_train.errors import UserError
from inktrace_train.model.device import pick_device
from inktrace_train.run.cores import CoreShare, fixed_threads
from inktrace_train.run.ranks import Ranks


def export_slurm_rendezvous(ranks: Ranks) -> None:
    """A Slurm task (submitit, srun) has SLURM_* but not MASTER_ADDR/MASTER_PORT: submitit's
    helper derives them from the job's node list, as torchrun would have set them."""
    if "MASTER_ADDR" in os.environ or ranks.world_size == 1:
        return
    try:
        from submitit.helpers import TorchDistributedEnvironment
    except ImportError:
        raise UserError(
            "a multi-task Slurm job needs MASTER_ADDR/MASTER_PORT: install the slurm extra "
            '(pip install -e ".[slurm]") or launch the tasks with torchrun'
        ) from None
    TorchDistributedEnvironment().export()


class Distributed:
    """This process's place in the job (one process: rank 0 of 1) and its device."""

    def __init__(self, ranks: Ranks, device: torch.device, cores: Optional[CoreShare] = None):
        self.ranks, self.device, self.cores = ranks, device, cores

    @classmethod
    def setup(cls, device_name: str) -> Distributed:
        """Join the job's process group (when there is more than one process) on this rank's device."""
        ranks, device = Ranks.from_env(), pick_device(device_name)
        cores = None
        if device.type == "cpu":
            threads = fixed_threads()
            if threads is None:  # shared with the other training processes on this machine
                cores = CoreShare()
                threads = cores.threads()
            if threads:
                torch.set_num_threads(threads)
        if ranks.world_size > 1 and not dist.is_initialized():
            export_slurm_rendezvous(ranks)
            if device.type == "cuda":
                device = torch.device("cuda", ranks.local_rank)
                torch.cuda.set_device(device)
            dist.init_process_group(
                "nccl" if device.type == "cuda" else "gloo", rank=ranks.rank, world_size=ranks.world_size
            )
            if not ranks.is_main:  # one rank tells the story; the others speak up only about problems
                logging.getLogger().setLevel(logging.WARNING)
        return cls(ranks, device, cores)

    def rebalance(self) -> None:
        """Follow the machine's share of cores as other training processes start and end (a
        folder listing: called at log intervals, not per step)."""
        if self.cores is not None:
            threads = self.cores.threads()
            if threads != torch.get_num_threads():
                torch.set_num_threads(threads)

    @property
    def is_main(self) -> bool:
        return self.ranks.is_main

    @property
    def world_size(self) -> int:
        return self.ranks.world_size

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model as the training step calls it (DDP across ranks); save the unwrapped one."""
        if not self.active:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def sync_gradients(self, model: nn.Module, sync: bool) -> ContextManager:
        """DDP all-reduces gradients in backward; skip that on micro-batches that do not step."""
        return model.no_sync() if self.active and not sync else nullcontext()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (a picklable value: a path, a flag)."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def layout(self, global_batch: int) -> Dict[str, Any]:
        """How the job runs, for the run's record: world size, each rank's device and intra-op
        threads, the global and per-rank batch (a collective: every rank calls it)."""
        mine = {"device": str(self.device), "threads": torch.get_num_threads(), "host": platform.node()}
        ranks = [mine]
        if self.active:
            ranks = [None] * self.world_size
            dist.all_gather_object(ranks, mine)
        return {
            "world_size": self.world_size,
            "ranks": ranks,
            "global_batch": global_batch,
            "per_rank_batch": global_batch // self.world_size,
        }

    def barrier(self) -> None:
        """Wait for every rank (e.g. until the main rank has written what the others read next)."""
        if self.active:
            dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.active:
            dist.all_reduce(tensor)
        return tensor

    def close(self) -> None:
        if self.cores is not None:
            self.cores.close()
        if self.active and dist.is_initialized():
            dist.destroy_process_group()

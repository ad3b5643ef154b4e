"""Which process of a data-parallel job this is, from the launcher's environment; no torch.

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; a Slurm task started by submitit or
srun sees ``SLURM_PROCID``, ``SLURM_NTASKS`` and ``SLURM_LOCALID`` instead. This is the one place
that reads them. (How the processes on one machine share its cores: :mod:`.cores`.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional


@dataclass(frozen=True)
class Ranks:
    rank: int = 0  # this process among all of the job
    world_size: int = 1  # processes in the job
    local_rank: int = 0  # this process among those on its machine (its GPU index)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> Ranks:
        env = os.environ if env is None else env
        if "WORLD_SIZE" in env:  # torchrun (or a launcher that sets the same variables)
            world = int(env["WORLD_SIZE"])
            return cls(int(env.get("RANK", 0)), world, int(env.get("LOCAL_RANK", 0)))
        if int(env.get("SLURM_NTASKS", 1)) > 1:  # one Slurm task per process
            return cls(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)))
        return cls()

"""Entry point: ``python -m inktrace_train [GROUP=OPTION]... [KEY=VALUE]...``.

Thin on purpose: check the command line, let Hydra compose and make the run
directory, then hand a typed Config to :func:`inktrace_train.app.train`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from inktrace_train.compose import check_overrides, config_dir, fail, register, to_config
from inktrace_train.config import UserError

register()


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> Optional[float]:
    try:
        config = to_config(cfg)  # multirun jobs are validated here, one by one
        from inktrace_train.app import train  # torch is imported only past validation

        return train(config, Path(HydraConfig.get().runtime.output_dir))
    except UserError as e:
        fail(str(e))


def main() -> None:
    try:
        check_overrides(sys.argv[1:])
    except UserError as e:
        fail(str(e))
    _hydra_main()


if __name__ == "__main__":
    main()

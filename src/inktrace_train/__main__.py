"""Entry point: ``python -m inktrace_train [GROUP=OPTION]... [KEY=VALUE]...``.

Thin on purpose: check the command line, let Hydra compose and make the run
directory, then hand a typed Config to :mod:`inktrace_train.app`. ``+resume=PATH``
skips composition: the run's own config.yaml is the config.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from inktrace_train.compose import (check_overrides, command_line, compose_stages, config_dir, fail, register,
                                    to_config)
from inktrace_train.config import UserError
from inktrace_train.runs import discard_unused

register()


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> Optional[float]:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        config = to_config(cfg)  # multirun jobs are validated here, one by one
        stages = compose_stages(config, list(hydra_cfg.overrides.task))  # all validated before training
        from inktrace_train.app import train  # torch is imported only past validation

        return train(config, stages, run_dir)
    except UserError as e:
        discard_unused(run_dir)
        fail(str(e))


def _resume(path: str, overrides: List[str]) -> None:
    from inktrace_train import resume

    plan = resume.plan(path, overrides)
    from inktrace_train.app import resume as resume_run

    resume_run(plan)


def main() -> None:
    argv = sys.argv[1:]
    try:
        check_overrides(argv)
        args = command_line(argv)
        if args.resume is not None and not (args.help or args.cfg or args.info or args.multirun):
            return _resume(args.resume, args.overrides)
    except UserError as e:
        fail(str(e))
    _hydra_main()


if __name__ == "__main__":
    main()

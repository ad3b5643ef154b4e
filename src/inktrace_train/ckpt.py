"""``python -m inktrace_train.ckpt``: the checkpoint tools (the command lives in ``inktrace_train.cli.ckpt``)."""

from inktrace_train.cli.ckpt import main

if __name__ == "__main__":
    main()

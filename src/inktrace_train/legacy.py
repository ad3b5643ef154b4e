"""``python -m inktrace_train.legacy``: the two old scripts' command lines (``inktrace_train.cli.legacy``)."""

from inktrace_train.cli.legacy import main

if __name__ == "__main__":
    main()

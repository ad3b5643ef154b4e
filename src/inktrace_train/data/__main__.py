"""``python -m inktrace_train.data check PATH``: the data tools (the command lives in ``inktrace_train.cli.data``)."""

from inktrace_train.cli.data import main

if __name__ == "__main__":
    main()

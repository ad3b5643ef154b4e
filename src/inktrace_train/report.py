"""``python -m inktrace_train.report``: a table of runs (the command lives in ``inktrace_train.cli.report``)."""

from inktrace_train.cli.report import main

if __name__ == "__main__":
    main()

"""``python -m inktrace_train.evaluate``: scores on the test sets (the command: ``inktrace_train.cli.evaluate``)."""

from inktrace_train.cli.evaluate import main

if __name__ == "__main__":
    main()

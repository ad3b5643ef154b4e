"""``python -m inktrace_train.predict``: images to strokes (the command lives in ``inktrace_train.cli.predict``)."""

from inktrace_train.cli.predict import main

if __name__ == "__main__":
    main()

"""``python -m dlmath``: the same command line as the ``dlmath`` script."""

from dlmath.cli import main

if __name__ == "__main__":
    main()

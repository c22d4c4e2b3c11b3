"""``acd``, the command-line entry point (``acd = "cli:main"``); the commands
live in :mod:`acd.cli`."""

from acd.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    main()

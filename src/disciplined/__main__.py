"""`python -m disciplined`: the same command as `disciplined`."""

from .cli import main

main()

"""`python -m movierec.cli`: the `movierec` command."""

from movierec.cli import main

main()

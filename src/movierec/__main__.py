"""`python -m movierec` runs the command line (as `movierec`)."""

from movierec.cli import main

if __name__ == "__main__":
    main()

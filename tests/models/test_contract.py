"""Run the shared model contract (tests/models/contract.py) over every registered model."""

from contract import *  # noqa: F403

"""`python -m qaflow` is the `qa` command."""

from qaflow.cli import entry

entry()

"""`python -m qaflow` is the `qa` command."""

from qaflow.cli.main import entry

entry()

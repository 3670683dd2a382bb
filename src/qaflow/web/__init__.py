"""The board (`qa serve`): a web app over the run store, to follow executions and compare them.

Imported only by `qa serve` and the tests: it pulls in FastAPI, Starlette and Jinja2.
"""

# The board shows statuses as `qa status` words them (qaflow.cli.commands.status). That module
# imports qaflow.cli.main, which imports every command, commands.status among them: importing
# the cli first keeps that cycle from starting halfway through commands.status.
import qaflow.cli.main  # noqa: F401

"""The board (`qa serve`): a web app over the run store, to follow executions and compare them.

Imported only by `qa serve` and the tests: it pulls in FastAPI, Starlette and Jinja2.
"""

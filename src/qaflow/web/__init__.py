"""The board (`qa serve`): a web app over the run store, to follow executions and compare them.

Imported only by `qa serve` and the tests: it pulls in FastAPI, Starlette and Jinja2. It reads
the store and the results phase; it imports nothing of the command line.
"""

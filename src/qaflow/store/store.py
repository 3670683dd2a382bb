"""The `Store`: one database (engine, transactions, open/close, schema check: `base.py`) and
its query modules by consumer, as attributes: `store.writes`, `store.lookups`,
`store.board`, `store.history`. See the package docstring (`qaflow.store`) for the design."""

from __future__ import annotations

from sqlalchemy import Engine

from qaflow.store.base import Database
from qaflow.store.board import BoardReads
from qaflow.store.history import History
from qaflow.store.lookups import Lookups
from qaflow.store.writes import Writes


class Store(Database):
    """Executions and runs, recorded one transaction per call. Open with `Store.open`; query
    through the part of the store a consumer needs:

    - `writes`: what drivers write (the recorder, the driver, background executions);
    - `lookups`: what reuse and the CLI look up (executions, runs, successes);
    - `board`: what the board reads (filtered lists, counts, graphs, pages of runs);
    - `history`: what compare and history read across executions.
    """

    def __init__(self, engine: Engine, *, shown_as: str | None = None) -> None:
        super().__init__(engine, shown_as=shown_as)
        self.writes = Writes(self)
        self.lookups = Lookups(self)
        self.board = BoardReads(self)
        self.history = History(self)

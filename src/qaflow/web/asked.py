"""What a request may ask of the board, bounded: query parameters, page numbers, run ids and
log offsets. Anything out of bounds is the client's mistake, answered 400 or 404 with a
sentence, never a 500 from the database (an id past int64, a LIKE pattern over SQLite's
50,000-byte limit, an offset `seek` cannot take)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from qaflow.web.deps import board

MAX_PARAM = 1000  # characters of a query parameter: ids, labels, search text
MAX_PAGE = 1_000_000
MAX_ID = 2**63 - 1  # an SQL BIGINT
MAX_OFFSET = 2**62  # bytes into a log


class NotFound(Exception):
    """What a page names does not exist: the board answers 404 with the message."""


class BadRequest(Exception):
    """A parameter the board cannot take: it answers 400 with the message."""


def not_found(request: Request, exc: Exception) -> Response:
    return board(request).render(
        request, "error.html", status_code=404, title="Not found", message=str(exc)
    )


def bad_request(request: Request, exc: Exception) -> Response:
    return board(request).render(
        request, "error.html", status_code=400, title="Bad request", message=str(exc)
    )


def params_of(request: Request, *names: str) -> dict[str, str]:
    """These query parameters, stripped ("" when absent); BadRequest when one is too long."""
    found = {name: request.query_params.get(name, "").strip() for name in names}
    for name, value in found.items():
        if len(value) > MAX_PARAM:
            raise BadRequest(
                f"The parameter {name!r} is {len(value)} characters long: the board takes at "
                f"most {MAX_PARAM}."
            )
    return found


def page_number(text: str | None) -> int:
    """A page of a table, from 1; BadRequest for a page that is no number or out of range."""
    if not text:
        return 1
    try:
        page = int(text)
    except ValueError:
        raise BadRequest(f"page={text[:40]!r} is not a page number.") from None
    if not 1 <= page <= MAX_PAGE:
        raise BadRequest(f"page={page if page < 10**12 else 'huge'}: pages go from 1.")
    return page


def run_id(value: int) -> int:
    """A run id as a path gives it: NotFound when no run can have it."""
    if not 1 <= value <= MAX_ID:
        raise NotFound(f"There is no run {value if abs(value) < 10**20 else '(huge id)'}.")
    return value


def log_offset(value: int) -> int:
    if not 0 <= value <= MAX_OFFSET:
        raise BadRequest("offset: a byte offset into the log, from 0.")
    return value

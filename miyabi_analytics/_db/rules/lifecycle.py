"""The lifecycle as the database enforces it: which status moves are legal, and the refusal.

The legal moves are :class:`~miyabi_analytics.vocabulary.ExecutionStatus`'s own
(``can_transition_to``), turned into SQL here, so the trigger and the Python check cannot
disagree. A refused move is an error every client can recognise:

- PostgreSQL: SQLSTATE ``23M01`` (class 23, integrity constraint violation; ``M`` for Miyabi),
  message ``illegal status transition: execution <id> cannot move from '<from>' to '<to>'``,
  with the legal moves in its DETAIL and the trigger's name as its constraint name.
- SQLite: ``RAISE(ABORT, ...)``, an ``SQLITE_CONSTRAINT_TRIGGER`` error whose message starts
  ``illegal status transition`` (SQLite 3.40 takes only a fixed text, so it names no row).

Both reach Python as an ``IntegrityError``; :func:`refused_move` tells this one from the others.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Final

from sqlalchemy.exc import DBAPIError

from miyabi_analytics._db.retry import sqlstate
from miyabi_analytics.vocabulary import ExecutionStatus

__all__ = [
    "GUARD",
    "LIFECYCLE_SQLSTATE",
    "MESSAGE",
    "RefusedMove",
    "allowed_moves",
    "describe_moves",
    "legal_move_sql",
    "refused_move",
]

LIFECYCLE_SQLSTATE: Final = "23M01"
MESSAGE: Final = "illegal status transition"
GUARD: Final = "miyabi_lifecycle_guard"
"""The trigger's name (PostgreSQL reports it as the error's constraint name)."""

_PG_MESSAGE: Final = re.compile(
    re.escape(MESSAGE) + r": execution (?P<id>\S+) cannot move from '(?P<current>[^']*)' "
    r"to '(?P<requested>[^']*)'"
)


def allowed_moves() -> tuple[tuple[ExecutionStatus, ExecutionStatus], ...]:
    """Every legal move between two different statuses, from the vocabulary's lifecycle."""
    return tuple(
        (old, new)
        for old in ExecutionStatus
        for new in ExecutionStatus
        if old is not new and old.can_transition_to(new)
    )


def describe_moves() -> str:
    """The legal moves as text: ``pending -> running | failed; running -> ...``."""
    by_old: dict[str, list[str]] = {}
    for old, new in allowed_moves():
        by_old.setdefault(old.value, []).append(new.value)
    return "; ".join(f"{old} -> {' | '.join(news)}" for old, news in by_old.items())


def legal_move_sql(old: str = "OLD.status", new: str = "NEW.status") -> str:
    """An SQL condition, the same on both databases: ``old`` may move to ``new`` (and differs)."""
    by_old: dict[str, list[str]] = {}
    for before, after in allowed_moves():
        by_old.setdefault(before.value, []).append(after.value)
    # Values from the vocabulary's enum only (lowercase words), never from input.
    terms = [
        f"({old} = '{before}' AND {new} IN ({', '.join(repr(a) for a in afters)}))"
        for before, afters in by_old.items()
    ]
    return "(" + " OR ".join(terms) + ")"


@dataclass(frozen=True, slots=True)
class RefusedMove:
    """What the database said about a refused move (PostgreSQL names all three; SQLite none)."""

    execution_id: str | None = None
    current: str | None = None
    requested: str | None = None


def refused_move(exc: BaseException) -> RefusedMove | None:
    """The lifecycle trigger's refusal in ``exc`` (or its driver error), else ``None``."""
    orig: BaseException | None = exc.orig if isinstance(exc, DBAPIError) else exc
    if orig is None:
        return None
    if sqlstate(orig) == LIFECYCLE_SQLSTATE:
        diag = getattr(orig, "diag", None)
        text = getattr(diag, "message_primary", None) or str(orig)
        found = _PG_MESSAGE.search(text)
        if found is None:
            return RefusedMove()
        return RefusedMove(found["id"], found["current"], found["requested"])
    if isinstance(orig, sqlite3.IntegrityError) and str(orig).startswith(MESSAGE):
        return RefusedMove()
    return None

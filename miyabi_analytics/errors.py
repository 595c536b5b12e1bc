"""The errors miyabi_analytics raises on purpose.

Hierarchy::

    MiyabiError
    ├── ValidationError (also ValueError)      bad input, refused before anything was written
    │   └── InvalidStatusTransition            an update would move a stored execution backwards
    ├── NotFound (also LookupError)            metrics or logs aimed at an unknown execution
    ├── SchemaError                            the database schema is newer than this code
    └── AggregateOverflowError (also OverflowError)  an exact sum does not fit in 64 bits

Every error keeps its constructor arguments in ``.args`` so it pickles across processes.
"""

from __future__ import annotations

__all__ = [
    "AggregateOverflowError",
    "InvalidStatusTransition", "MiyabiError", "NotFound", "SchemaError", "ValidationError",
]


class MiyabiError(Exception):
    """Base class for every error miyabi_analytics raises on purpose."""


class ValidationError(MiyabiError, ValueError):
    """Input refused before anything was written; names the field and the bad value."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(field, value, reason)
        self.field = field
        self.value = value
        self.reason = reason

    def __str__(self) -> str:
        shown = repr(self.value)
        if len(shown) > 200:
            shown = shown[:197] + "..."
        return f"{self.field}={shown}: {self.reason}"


class InvalidStatusTransition(ValidationError):  # noqa: N818 (name fixed by the contract)
    """A save would move a stored execution backwards; the stored row is unchanged.

    The store checks first; the database's lifecycle guard (SQLSTATE ``23M01`` on PostgreSQL)
    refuses any move the store's check missed, and that refusal is raised as this error too.
    """

    def __init__(self, execution_id: object, current: str, requested: str) -> None:
        MiyabiError.__init__(self, execution_id, current, requested)
        self.field = "status"
        self.value = requested
        self.reason = (
            f"execution {execution_id} is {current!r}; it cannot move to {requested!r}"
        )
        self.execution_id = execution_id
        self.current = current
        self.requested = requested


class NotFound(MiyabiError, LookupError):  # noqa: N818 (name fixed by the contract)
    """Metrics, logs or a lookup aimed at an execution id that is not stored."""

    def __init__(self, what: str, key: object) -> None:
        super().__init__(what, key)
        self.what = what
        self.key = key

    def __str__(self) -> str:
        return f"{self.what} {self.key} not found"


class SchemaError(MiyabiError):
    """The database was migrated by a newer miyabi_analytics than this one."""


class AggregateOverflowError(MiyabiError, OverflowError):
    """An exact sum does not fit its ``Int64`` column; the same error on both databases.

    ``column`` is the frame's column, ``value`` the exact sum (a Python ``int``) of the group
    where it is largest in magnitude.
    """

    def __init__(self, column: str, value: int) -> None:
        super().__init__(column, value)
        self.column = column
        self.value = value

    def __str__(self) -> str:
        return (
            f"{self.column}={self.value}: the sum does not fit in a 64-bit integer (Int64); "
            "group more finely (by, freq) or filter fewer rows"
        )

"""Row-level security for a table with its own ``repository_id`` (the rollups, 0011 onwards).

The condition is revision 0003's on the executions: with ``miyabi.repository_ids`` unset or
empty every row shows; set, only its repositories' rows show, and a write outside is refused.
"""

from __future__ import annotations

from typing import Final

__all__ = ["POLICY", "repository_scope_ddl"]

POLICY: Final = "miyabi_repository_scope"
_SETTING: Final = "current_setting('miyabi.repository_ids', true)"
_SCOPE: Final = (
    f"coalesce({_SETTING}, '') = '' "
    f"OR repository_id = ANY (string_to_array({_SETTING}, ',')::uuid[])"
)


def repository_scope_ddl(table: str) -> list[str]:
    """PostgreSQL statements that scope ``table`` by its ``repository_id``, owner included."""
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY {POLICY} ON {table} FOR ALL USING ({_SCOPE}) WITH CHECK ({_SCOPE})",
    ]

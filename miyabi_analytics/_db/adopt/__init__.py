"""Adopting a database the upstream Miyabi migrations created, and giving it back.

:mod:`.detect` tells an empty database, ours, upstream's and anything else apart;
:mod:`.plan` lists and runs the steps that bring upstream's to our first revision's shape
(alembic goes on from there); :mod:`.undo` returns it to upstream's shape;
:mod:`.catalog` reads the PostgreSQL catalog they decide on.
"""

from miyabi_analytics._db.adopt.detect import ADOPTION_RECORD, Kind, classify
from miyabi_analytics._db.adopt.plan import (
    ADOPTED_REVISION,
    Step,
    adoption_steps,
    validation_steps,
)
from miyabi_analytics._db.adopt.undo import drop_added_constraints, is_adopted, undo_adoption

__all__ = [
    "ADOPTED_REVISION",
    "ADOPTION_RECORD",
    "Kind",
    "Step",
    "adoption_steps",
    "classify",
    "drop_added_constraints",
    "is_adopted",
    "undo_adoption",
    "validation_steps",
]

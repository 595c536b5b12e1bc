"""The summary view as a Table (in its own MetaData, so ``alembic check`` ignores it).

Its columns are :func:`~miyabi_analytics._db.summary.summary_select`'s, the view's definition.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from miyabi_analytics._db.summary import summary_table
from miyabi_analytics.vocabulary import TYPED_METRICS as TYPED_METRICS

view_metadata = MetaData()

summary = summary_table(view_metadata)

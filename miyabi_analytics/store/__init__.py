"""The store: every write and lookup of executions, metrics and logs, one transaction each.

:class:`ExecutionStore` is its one public face. Behind it, one module per concern, each a set
of functions of a bind: ``executions`` (the guarded upsert and lookups), ``children`` (metrics
and log lines), ``liveness`` (heartbeats, reaping), ``bulk`` (batches, with ``bulk_args``
checking their arguments). Every write goes through ``_db.tx.write``, the package's one retry.
"""

from miyabi_analytics.store.bulk import DEFAULT_BATCH_SIZE as DEFAULT_BATCH_SIZE
from miyabi_analytics.store.bulk import MAX_BATCH_SIZE as MAX_BATCH_SIZE
from miyabi_analytics.store.execution_store import ExecutionStore as ExecutionStore

__all__ = ["DEFAULT_BATCH_SIZE", "MAX_BATCH_SIZE", "ExecutionStore"]

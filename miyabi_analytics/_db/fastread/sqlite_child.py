"""The SQLite fast read's child process: ADBC's SQLite driver, alone in a process of its own.

``adbc-driver-sqlite`` links a copy of SQLite of its own. Two copies of SQLite in one process
break SQLite's POSIX locking (fcntl locks belong to the process, and closing any descriptor
of a file drops all of the process's locks on it: "How To Corrupt An SQLite Database File",
2.2.1): a driver connection closing beside Python's ``sqlite3`` believed it was the last one,
checkpointed and deleted the WAL that ``sqlite3`` still wrote to, so later commits went to an
unlinked file and reads were stale. In a process of its own it is one more SQLite client among
others, which SQLite's locking supports.

The parent (:mod:`miyabi_analytics._db.fastread.sqlite`) runs this file as ``__main__``
without importing the package (which would cost a second of imports): it imports nothing of
the package, only the standard library, pyarrow and the ADBC driver (not its DB-API module,
which imports pandas). The request comes as JSON on stdin, the rows go out as an Arrow IPC
stream on stdout, and a failure is one JSON line on stderr (the driver's error class and
message) with exit status 1.
"""

from __future__ import annotations

import json
import sys
from contextlib import closing
from typing import Any, Final

__all__ = ["FAILED", "main"]

FAILED: Final = 1


def _report(kind: str, message: str) -> int:
    sys.stderr.write(json.dumps({"error": kind, "message": message}) + "\n")
    sys.stderr.flush()
    return FAILED


def main() -> int:
    """Run the request read from stdin; the exit status (0, or :data:`FAILED`)."""
    request: dict[str, Any] = json.loads(sys.stdin.buffer.read())
    import adbc_driver_manager as adbc
    import adbc_driver_sqlite
    import pyarrow as pa

    out = sys.stdout.buffer
    try:
        with (
            closing(adbc_driver_sqlite.connect(request["path"])) as database,
            closing(adbc.AdbcConnection(database)) as connection,
            closing(adbc.AdbcStatement(connection)) as statement,
        ):
            statement.set_options(**{"adbc.sqlite.query.batch_rows": str(request["batch_rows"])})
            statement.set_sql_query(request["query"])
            statement.prepare()
            values: list[Any] = request["values"]
            if values:
                names = [f"p{n}" for n in range(len(values))]
                statement.bind(pa.record_batch([pa.array([v]) for v in values], names=names))
            handle, _ = statement.execute_query()
            reader = pa.RecordBatchReader._import_from_c(handle.address)
            with pa.ipc.new_stream(out, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
    except adbc.Error as exc:
        return _report(type(exc).__name__, str(exc))
    except BrokenPipeError:  # the reader stopped early: nothing to report to anyone
        return FAILED
    except Exception as exc:  # anything else still ends as one line the parent can read
        return _report("DatabaseError", f"{type(exc).__name__}: {exc}")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

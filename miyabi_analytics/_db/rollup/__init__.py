"""Rollups (revision 0011): per-day summaries that make long-range aggregates cheap.

:mod:`.parts` says what a rollup row holds, :mod:`.refresh` recomputes the days the database
marked pending (:mod:`miyabi_analytics._db.rules.rollup_marks`), :mod:`miyabi_analytics.
aggregates._rollup` answers an aggregate from the rollup for settled days and from the rows
for the rest.
"""

"""Issue 12, item 9: one time window check for every reader, aggregate, the report and the CLI.

``since >= until`` is refused everywhere with the same ValidationError (field ``until``, both
values in the message), before any query; bounds that cannot be converted are refused naming
them; the report refuses a window whose previous period would start before 1970-01-01
(instead of overflowing in the notebook and exiting 1). Run on SQLite and PostgreSQL.
"""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import URL, Engine, func, inspect, select

import miyabi_analytics as ma
from miyabi_analytics._db.schema import executions, logs
from miyabi_analytics.cli import main
from miyabi_analytics.reader import _read_summary_simple

T0 = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
FIRST = datetime(1, 1, 1, tzinfo=UTC)
LAST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def _export(tmp: Path) -> Callable[..., Any]:
    def export(engine: Engine, **window: Any) -> Any:
        return ma.export_summary(engine, tmp / "summary.parquet", **window)

    return export


def readers(tmp: Path) -> dict[str, Callable[..., Any]]:
    """Every public function that takes a time window, called the same way."""
    return {
        "read_summary": ma.read_summary,
        "read_summary_arrow": ma.read_summary_arrow,
        "_read_summary_simple": _read_summary_simple,
        "iter_summary": ma.iter_summary,  # refused by the call, before the first chunk
        "export_summary": _export(tmp),
        "read_logs": ma.read_logs,
        "success_rates": ma.success_rates,
        "success_rates_daily": lambda e, **w: ma.success_rates(e, freq="D", **w),
        "quality_trend": ma.quality_trend,
        "quality_trend_weekly": lambda e, **w: ma.quality_trend(e, freq="W", **w),
        "duration_stats": ma.duration_stats,
        "business_metrics": ma.business_metrics,
        "error_analysis": ma.error_analysis,
    }


NAMES = list(readers(Path()))


def seed(engine: Engine) -> ma.AgentExecutionResult:
    agent = ma.SalesAgent()
    record = (
        agent.builder(uuid.uuid4()).status("completed").started_at(T0)
        .completed_at(T0 + timedelta(minutes=3)).quality_score(70).build()
    )
    agent.save_execution(engine, record)
    agent.save_analysis_metrics(engine, record.id, {"roi_percent": 12.5})
    agent.log(engine, record.id, "info", "done")
    failed = (
        agent.builder(uuid.uuid4()).status("failed").started_at(T0)
        .completed_at(T0 + timedelta(minutes=1)).error_message("quota exceeded").build()
    )
    agent.save_execution(engine, failed)
    return record


def log_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(logs)).scalar_one())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("2026-05-01", "2026-04-01"),  # inverted
        ("2026-04-01", "2026-04-01"),  # empty
        (T0, T0 - timedelta(microseconds=1)),
        (T0.astimezone(timezone(timedelta(hours=9))), T0),  # one instant in two zones
    ],
    ids=["inverted", "equal_dates", "one_microsecond_inverted", "one_instant_two_zones"],
)
def test_an_empty_or_inverted_window_is_refused_everywhere(engine, tmp_path, name, since, until):
    seed(engine)
    out = tmp_path / "out"
    out.mkdir()
    call = readers(out)[name]
    with pytest.raises(ma.ValidationError) as info:
        call(engine, since=since, until=until)
    err = info.value
    assert err.field == "until"
    assert err.value == until
    assert str(err).startswith("until=")
    assert "since=" in str(err)
    assert list(out.iterdir()) == []  # no file, not even the partial one


def test_read_logs_refuses_what_read_summary_refuses(engine):
    """The original defect: read_logs answered an inverted window with an empty frame."""
    seed(engine)
    assert log_count(engine) == 1
    refused = {}
    for call in (ma.read_summary, ma.read_logs):
        with pytest.raises(ma.ValidationError) as info:
            call(engine, since="2026-05-01", until="2026-04-01")
        refused[call.__name__] = (info.value.field, info.value.value, info.value.reason)
    assert refused["read_summary"] == refused["read_logs"]


@pytest.mark.parametrize("name", NAMES)
def test_the_widest_window_python_can_hold_is_accepted(engine, tmp_path, name):
    """Stored timestamps may be anything from year 1 to 9999; any such bound is a filter."""
    seed(engine)
    call = readers(tmp_path)[name]

    def rows(**window: Any) -> int:
        result = call(engine, **window)
        if name == "iter_summary":
            return sum(len(chunk) for chunk in result)
        return int(result) if name == "export_summary" else len(result)

    assert rows(since=FIRST, until=LAST) == rows() > 0
    assert rows(since=FIRST) == rows(until=LAST) == rows()


OUT_OF_RANGE: dict[str, Any] = {
    "text_west_of_utc_at_the_end": "9999-12-31T23:59:59.999999-01:00",
    "text_east_of_utc_at_the_start": "0001-01-01T00:00:00+01:00",
    "datetime_east_of_utc_at_the_start": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
    "pandas_timestamp_past_9999": pd.Timestamp(LAST) + pd.Timedelta(days=2),
    "year_zero_text": "0000-12-31",
    "year_10000_text": "10000-01-01",
}


@pytest.mark.parametrize("name", ["read_summary", "read_logs", "iter_summary", "success_rates"])
@pytest.mark.parametrize("bound", list(OUT_OF_RANGE))
@pytest.mark.parametrize("side", ["since", "until"])
def test_a_bound_that_cannot_be_converted_is_refused_naming_it(
    engine, tmp_path, name, bound, side
):
    value = OUT_OF_RANGE[bound]
    with pytest.raises(ma.ValidationError) as info:
        readers(tmp_path)[name](engine, **{side: value})
    assert info.value.field == side
    assert info.value.value is value


# -- the report ---------------------------------------------------------------------------------


def report_runs_count(url: URL) -> int:
    engine = ma.connect(url)
    try:
        if "report_runs" not in inspect(engine).get_table_names():
            return 0
        with engine.connect() as conn:
            return len(conn.exec_driver_sql("SELECT id FROM report_runs").all())
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        (["--since", "0001-01-01"], "since"),  # the original defect: OverflowError, exit 1
        (["--since", "1970-01-01", "--until", "2026-01-01"], "since"),
        (["--until", "0001-01-10"], "until"),
        (["--until", "1970-02-10"], "until"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "until"),
        (["--since", "2026-01-01", "--until", "2026-01-01"], "until"),
        (["--since", "0001-01-01T00:00+01:00"], "since"),
        (["--until", "9999-12-31T23:59:59.999999-01:00"], "until"),
    ],
)
def test_report_refuses_a_bad_window_with_exit_2_and_one_line(
    db_url, tmp_path, capsys, arguments, field
):
    before = report_runs_count(db_url)
    url = db_url.render_as_string(hide_password=False)
    output = tmp_path / "report.html"
    status = main(["report", "--url", url, *arguments, "--output", str(output)])
    captured = capsys.readouterr()
    assert status == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"miyabi-analytics: error: {field}=")
    assert "Traceback" not in captured.err
    assert captured.out == ""
    assert not output.exists()
    assert report_runs_count(db_url) == before


def test_report_window_accepts_the_earliest_since_and_no_earlier():
    from miyabi_analytics.reports import report_window

    until = datetime(2026, 1, 1, tzinfo=UTC)
    earliest = datetime(1970, 1, 1, tzinfo=UTC) + (until - datetime(1970, 1, 1, tzinfo=UTC)) / 2
    start, end = report_window(earliest, until)
    assert (start, end) == (earliest, until)
    assert start - (end - start) == datetime(1970, 1, 1, tzinfo=UTC)
    with pytest.raises(ma.ValidationError) as info:
        report_window(earliest - timedelta(microseconds=1), until)
    assert info.value.field == "since"
    assert earliest.isoformat() in info.value.reason


def test_report_window_default_since_is_checked_too():
    from miyabi_analytics.reports import DEFAULT_DAYS, report_window

    last_ok = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=2 * DEFAULT_DAYS)
    assert report_window(None, last_ok) == (last_ok - timedelta(days=DEFAULT_DAYS), last_ok)
    with pytest.raises(ma.ValidationError) as info:
        report_window(None, last_ok - timedelta(microseconds=1))
    assert info.value.field == "until"


def test_stored_rows_are_untouched_by_refused_reads(engine, tmp_path):
    record = seed(engine)
    with engine.connect() as conn:
        before = conn.execute(select(executions)).all()
    for call in readers(tmp_path).values():
        with pytest.raises(ma.ValidationError):
            call(engine, since="2026-05-01", until="2026-04-01")
    with engine.connect() as conn:
        assert conn.execute(select(executions)).all() == before
    assert ma.ExecutionStore(engine).get_execution(record.id).status == "completed"

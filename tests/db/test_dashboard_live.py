"""The dashboard's live mode (issue 15, item 4): events in, only the touched queries again.

Events are built from the rows the database's own triggers wrote to
``agent_execution_transitions`` (the fake source replays them; the real one is ``watch``), and
every partial recompute is held to a full refresh of a new model on the same database.
"""

from __future__ import annotations

import dataclasses
import queue
import subprocess
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

import miyabi_analytics as ma
from miyabi_analytics._dashboard import FRAME_KEYS, dashboard_queries
from miyabi_analytics._dashboard_live import LiveModel, touched_queries
from miyabi_analytics._db.schema import executions, transitions
from miyabi_analytics._live_feed import WAIT_SECONDS, LiveFeed
from miyabi_analytics.demo import load_demo
from miyabi_analytics.live import TransitionEvent
from miyabi_analytics.live._postgres import APPLICATION_NAME
from miyabi_analytics.widgets import DashboardData, DashboardFilters, DashboardModel

END = datetime(2026, 3, 11, 15, 30, tzinfo=UTC)
SINCE = datetime(2026, 2, 11, tzinfo=UTC)
UNTIL = datetime(2026, 3, 11, tzinfo=UTC)  # the previous period: 2026-01-14 .. SINCE
INSIDE = UNTIL - timedelta(hours=5)
# "rollup": any change marks its day pending, so the rollups' freshness line is read again
FINISH = frozenset({"success", "success_over_time", "quality", "now.quality", "durations",
                    "rollup"})
ROW = FINISH | {"errors", "business"}


# ------------------------------------------------------------------------------ helpers


class FakeWatch:
    """A stand-in for ``watch``: each stream gets what is put while it is open (it listens from
    its call), and ends after ``idle`` s without an event; a dropped stream closes too.

    ``gaps`` counts the moments no stream was open (what was put then is lost, as a commit
    between two ``watch`` calls is).
    """

    def __init__(self, idle: float = 0.4) -> None:
        self.idle = idle
        self.opened = 0
        self.closed = 0
        self.gaps = 0
        self.lost = 0
        self._lock = threading.Lock()
        self._open: list[queue.SimpleQueue[TransitionEvent]] = []

    def __call__(self) -> Iterator[TransitionEvent]:
        inbox: queue.SimpleQueue[TransitionEvent] = queue.SimpleQueue()
        with self._lock:
            self._open.append(inbox)
            self.opened += 1
        stream = self._stream(inbox)
        weakref.finalize(stream, self._forget, inbox)  # as watch does: let go, closed
        return stream

    def _stream(self, inbox: queue.SimpleQueue[TransitionEvent]) -> Iterator[TransitionEvent]:
        try:
            while True:
                try:
                    yield inbox.get(timeout=self.idle)
                except queue.Empty:
                    return
        finally:
            self._forget(inbox)

    def _forget(self, inbox: queue.SimpleQueue[TransitionEvent]) -> None:
        with self._lock:
            if inbox in self._open:
                self._open.remove(inbox)
                self.closed += 1
                self.gaps += not self._open

    def put(self, events: list[TransitionEvent]) -> None:
        with self._lock:
            self.lost += 0 if self._open else len(events)
            for inbox in self._open:
                for event in events:
                    inbox.put(event)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def last_transition(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.coalesce(sa.func.max(transitions.c.id), 0))).one()[0]
        )


def events_after(engine: Engine, after: int) -> list[TransitionEvent]:
    """The transitions the triggers recorded after id ``after``, as ``watch`` yields them."""
    t, e = transitions, executions
    statement = (
        sa.select(
            t.c.id,
            t.c.execution_id,
            e.c.repository_id,
            e.c.agent_type,
            t.c.from_status,
            t.c.to_status,
            t.c.at,
        )
        .join(e, e.c.id == t.c.execution_id)
        .where(t.c.id > after)
        .order_by(t.c.id)
    )
    with engine.connect() as conn:
        return [
            TransitionEvent(
                transition_id=r.id,
                execution_id=uuid.UUID(str(r.execution_id)),
                repository_id=uuid.UUID(str(r.repository_id)),
                agent_type=r.agent_type,
                from_status=r.from_status,
                to_status=r.to_status,
                at=r.at,
            )
            for r in conn.execute(statement)
        ]


def save(engine: Engine, agent: str, repo: uuid.UUID, **fields: Any) -> ma.AgentExecutionResult:
    """One execution saved by its agent, built from ``fields`` (builder setter -> value)."""
    builder = ma.agent_for(agent).builder(repo)
    for name, value in fields.items():
        getattr(builder, name)(value)
    result: ma.AgentExecutionResult = builder.build()
    ma.agent_for(agent).save_execution(engine, result)
    return result


def finish(engine: Engine, result: ma.AgentExecutionResult, status: str, **more: Any) -> None:
    done = dataclasses.replace(
        result,
        status=ma.ExecutionStatus(status),
        completed_at=(result.started_at or INSIDE) + timedelta(minutes=7),
        **more,
    )
    ma.agent_for(result.agent_type).save_execution(engine, done)


def assert_same_data(partial: DashboardData, full: DashboardData) -> None:
    assert partial.kpis == full.kpis
    assert partial.stuck == full.stuck
    for key in FRAME_KEYS:
        pd.testing.assert_frame_equal(partial.frames[key], full.frames[key], check_like=True)


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    load_demo(engine, 600, seed=11, end=END)
    return engine


def model_of(engine: Engine, **filters: Any) -> DashboardModel:
    return DashboardModel(engine, DashboardFilters.build(since=SINCE, until=UNTIL, **filters))


def event(
    from_status: str | None,
    to_status: str,
    *,
    at: datetime = INSIDE,
    agent: str = "SalesAgent",
    repo: uuid.UUID | None = None,
) -> TransitionEvent:
    return TransitionEvent(1, uuid.uuid4(), repo or uuid.uuid4(), agent, from_status, to_status, at)


# ------------------------------------------------------------------ touched, as a rule


WINDOW = DashboardFilters.build(since=SINCE, until=UNTIL)


@pytest.mark.parametrize(
    ("move", "expected"),
    [
        (("running", "completed"), FINISH | {"stuck"}),
        (("running", "failed"), FINISH | {"errors", "stuck"}),
        ((None, "completed"), ROW - {"business"}),
        ((None, "running"), ROW - {"business"} | {"stuck"}),
        (("pending", "running"), ROW | {"stuck"}),
    ],
    ids=["complete", "fail", "insert-completed", "insert-running", "start"],
)
def test_an_event_in_the_window_touches_what_its_move_changes(
    move: tuple[str | None, str], expected: frozenset[str]
) -> None:
    touched = touched_queries(WINDOW, [event(*move)], lambda _e: INSIDE)
    assert touched == expected
    assert touched <= set(dashboard_queries(WINDOW))


def test_events_outside_the_selection_touch_nothing_and_read_nothing() -> None:
    asked: list[TransitionEvent] = []

    def started(e: TransitionEvent) -> datetime:
        asked.append(e)
        return INSIDE

    repo, other = uuid.uuid4(), uuid.uuid4()
    one_repo = WINDOW.changed(repository_ids=[str(repo)])
    assert touched_queries(one_repo, [event("running", "completed", repo=other)], started) == set()
    design = WINDOW.changed(categories=["design"])
    assert touched_queries(design, [event("running", "completed")], started) == set()
    finished_only = WINDOW.changed(statuses=["failed"])
    assert touched_queries(finished_only, [event("running", "completed")], started) == set()
    assert asked == []  # decided without reading started_at
    # a row leaving (or joining) the status selection changes every frame it was in
    assert touched_queries(finished_only, [event("running", "failed")], started) == ROW | {"stuck"}


@pytest.mark.parametrize(
    ("started", "expected"),
    [
        (SINCE - timedelta(days=3), {"before.success", "before.quality", "rollup"}),
        (SINCE - timedelta(days=40), set()),
        (UNTIL, set()),
        (None, set()),
    ],
    ids=["previous-period", "long-before", "after-the-window", "never-started"],
)
def test_the_window_is_the_executions_started_at(
    started: datetime | None, expected: set[str]
) -> None:
    assert touched_queries(WINDOW, [event("running", "completed")], lambda _e: started) == expected


def test_without_a_time_filter_no_started_at_is_read() -> None:
    def unreadable(_e: TransitionEvent) -> datetime:
        raise AssertionError("started_at asked for")

    assert touched_queries(DashboardFilters(), [event("running", "completed")], unreadable) == (
        FINISH | {"stuck"}
    )


# ----------------------------------------------------------- applied to a real model


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [("completed", FINISH | {"stuck"}), ("failed", FINISH | {"errors", "stuck"})],
)
def test_an_event_reruns_only_the_touched_queries_and_equals_a_full_refresh(
    seeded: Engine, outcome: str, expected: frozenset[str]
) -> None:
    repo = uuid.uuid4()
    running = save(seeded, "SalesAgent", repo, status="running", started_at=INSIDE)
    model = model_of(seeded)
    before = model.refresh()
    mark, ran = last_transition(seeded), model.queries_run
    more = {"quality_score": 35} if outcome == "completed" else {"error_message": "boom"}
    finish(seeded, running, outcome, **more)
    live = LiveModel(model, FakeWatch())
    assert live.apply(events_after(seeded, mark)) == expected
    assert model.last_recomputed == expected
    assert model.queries_run - ran == len(expected)  # business, errors or before.* not rerun
    assert live.lookups == 1  # started_at of the batch, one query
    after = model.refresh()
    assert after is not before
    assert_same_data(after, model_of(seeded).refresh())
    assert after.kpis[1].value != before.kpis[1].value  # the success rate moved


def test_inserted_executions_count_at_once(seeded: Engine) -> None:
    model = model_of(seeded)
    before = model.refresh()
    mark = last_transition(seeded)
    for minute in range(3):
        save(
            seeded,
            "CRMAgent",
            uuid.uuid4(),
            status="completed",
            quality_score=90,
            started_at=INSIDE + timedelta(minutes=minute),
            completed_at=INSIDE + timedelta(minutes=minute + 1),
        )
    live = LiveModel(model, FakeWatch())
    assert live.apply(events_after(seeded, mark)) == ROW - {"business"}
    after = model.refresh()
    assert after.kpis[0].value == (before.kpis[0].value or 0) + 3
    assert_same_data(after, model_of(seeded).refresh())


def test_events_outside_the_filters_rerun_nothing(seeded: Engine) -> None:
    repo = str(ma.read_summary(seeded, since=SINCE, until=UNTIL)["repository_id"].iloc[0])
    cases = [
        (model_of(seeded, repository_ids=[repo]), "SalesAgent", INSIDE),  # another repository
        (model_of(seeded, categories=["design"]), "SalesAgent", INSIDE),  # another agent
        (model_of(seeded), "SalesAgent", SINCE - timedelta(days=60)),  # before both periods
    ]
    for model, agent, started in cases:
        shown = model.refresh()
        mark, ran = last_transition(seeded), model.queries_run
        save(
            seeded,
            agent,
            uuid.uuid4(),
            status="completed",
            started_at=started,
            completed_at=started + timedelta(minutes=3),
            quality_score=10,
        )
        live = LiveModel(model, FakeWatch())
        assert live.apply(events_after(seeded, mark)) == frozenset()
        assert model.queries_run == ran
        assert model.refresh() is shown
        assert_same_data(shown, DashboardModel(seeded, model.filters).refresh())  # truly untouched


def test_other_cached_states_are_dropped_only_when_touched(seeded: Engine) -> None:
    model = model_of(seeded)
    everything = model.refresh()
    model.update(categories=["marketing"])
    marketing = model.refresh()
    model.update(categories=["design"])
    design = model.refresh()
    mark = last_transition(seeded)
    save(
        seeded,
        "SNSStrategyAgent",
        uuid.uuid4(),
        status="completed",
        started_at=INSIDE,
        completed_at=INSIDE + timedelta(minutes=1),
    )  # marketing
    ran = model.queries_run
    LiveModel(model, FakeWatch()).apply(events_after(seeded, mark))
    assert model.queries_run == ran  # the shown state (design) is untouched
    assert model.refresh() is design
    model.update(categories=["marketing"])
    assert model.refresh() is not marketing  # touched: dropped, queried again
    model.update(categories=None)
    assert model.refresh() is not everything


# ------------------------------------------------------------- the feed, coalescing


def test_a_burst_is_one_refresh_and_a_later_event_another(seeded: Engine) -> None:
    model = model_of(seeded)
    model.refresh()
    mark = last_transition(seeded)
    ma.ExecutionStore(seeded).save_executions(
        ma.agent_for("SalesAgent")
        .builder(uuid.uuid4())
        .status("completed")
        .started_at(INSIDE)
        .completed_at(INSIDE + timedelta(seconds=n + 1))
        .build()
        for n in range(40)
    )
    burst = events_after(seeded, mark)
    assert len(burst) == 40
    fake = FakeWatch()
    changes: list[frozenset[str]] = []
    live = listening_live(model, fake, on_change=lambda _data, keys: changes.append(keys))
    try:
        ran = model.queries_run
        fake.put(burst)
        wait_until(lambda: live.feed.events == 40)
        assert live.feed.batches == 1
        assert len(changes) == 1
        assert model.queries_run - ran == len(changes[0])
        assert model.refresh().kpis[0].value == model_of(seeded).refresh().kpis[0].value

        fake.put([dataclasses.replace(burst[0], transition_id=10**9)])
        wait_until(lambda: live.feed.events == 41)
        assert live.feed.batches == 2
    finally:
        assert live.stop()
    assert not live.feed.running
    assert fake.closed == fake.opened >= 1


def test_a_failing_source_is_retried_and_reported() -> None:
    states: list[tuple[str, str | None]] = []
    calls = 0

    def source() -> Iterator[TransitionEvent]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return iter(())  # the first stream opens (in start()), then ends at once
        raise ConnectionError("database gone")

    feed = LiveFeed(
        source,
        lambda _batch: None,
        on_state=lambda s, e: states.append((s, repr(e) if e else None)),
    )
    feed.start()
    wait_until(lambda: calls >= 3)  # retried after a wait
    assert feed.stop()
    assert ("retrying", "ConnectionError('database gone')") in states
    assert states[-1] == ("stopped", None)


def test_queries_a_failed_batch_could_not_run_run_with_the_next(
    seeded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = model_of(seeded)
    model.refresh()
    live = LiveModel(model, FakeWatch())
    mark = last_transition(seeded)
    save(seeded, "CRMAgent", uuid.uuid4(), status="running", started_at=INSIDE)
    failing = events_after(seeded, mark)

    def broken(_jobs: Any) -> Any:
        raise sa.exc.OperationalError("SELECT", {}, Exception("server closed the connection"))

    with monkeypatch.context() as patch:
        patch.setattr(model, "_query_all", broken)
        with pytest.raises(sa.exc.OperationalError):
            live.apply(failing)
    mark = last_transition(seeded)
    save(
        seeded,
        "CRMAgent",
        uuid.uuid4(),
        status="failed",
        started_at=INSIDE - timedelta(hours=1),
        completed_at=INSIDE,
        error_message="x",
    )
    assert live.apply(events_after(seeded, mark)) == ROW - {"business"} | {"stuck"}  # + failed
    assert_same_data(model.refresh(), model_of(seeded).refresh())


def test_a_batch_that_could_not_even_read_started_at_reruns_everything_next(
    seeded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from miyabi_analytics import _dashboard_live

    model = model_of(seeded)
    model.refresh()
    live = LiveModel(model, FakeWatch())
    mark = last_transition(seeded)
    save(
        seeded,
        "CRMAgent",
        uuid.uuid4(),
        status="completed",
        started_at=INSIDE,
        completed_at=INSIDE + timedelta(minutes=1),
    )
    batch = events_after(seeded, mark)

    def unreadable(_self: Any, _event: TransitionEvent) -> datetime:
        raise sa.exc.OperationalError("SELECT", {}, Exception("server closed the connection"))

    with monkeypatch.context() as patch:
        patch.setattr(_dashboard_live._StartedAt, "__call__", unreadable)
        with pytest.raises(sa.exc.OperationalError):
            live.apply(batch)
    ran = model.queries_run
    everything = frozenset(dashboard_queries(model.filters))
    assert live.apply([]) == everything  # even an empty batch brings the page up to date
    assert model.queries_run - ran == len(everything)
    assert_same_data(model.refresh(), model_of(seeded).refresh())


def synthetic(transition_id: int) -> TransitionEvent:
    return dataclasses.replace(event("running", "completed"), transition_id=transition_id)


@pytest.mark.parametrize("handover", [True, False])
def test_the_next_stream_opens_before_the_last_ends_so_no_commit_falls_between(
    handover: bool,
) -> None:
    fake = FakeWatch(idle=0.4)
    got: list[TransitionEvent] = []
    feed = LiveFeed(fake, got.extend, coalesce=0.01, idle=0.4 if handover else None)
    feed.start()
    try:
        wait_until(lambda: fake.closed >= 4)  # four streams ended for want of events
        if handover:
            assert fake.gaps == 0  # a successor listened before each one ended
            assert feed.handovers >= 4
        else:
            assert fake.gaps >= 4  # what a commit in one of those moments would miss
            assert feed.handovers == 0
        fake.put([synthetic(7), synthetic(7), synthetic(8)])  # 7 seen by two streams
        wait_until(lambda: feed.events == 2)
    finally:
        assert feed.stop()
    assert [e.transition_id for e in got] == [7, 8]
    wait_until(lambda: fake.closed == fake.opened)  # the dropped successors closed too


def test_a_successor_is_dropped_when_the_current_stream_yields() -> None:
    fake = FakeWatch(idle=0.4)
    feed = LiveFeed(fake, lambda _batch: None, coalesce=0.01, idle=0.4)
    feed.start()
    try:
        wait_until(lambda: fake.opened == 2 and fake.closed == 0)  # the successor is open
        fake.put([synthetic(1)])  # both hear it; the current one yields: successor dropped
        wait_until(lambda: feed.events == 1)
        wait_until(lambda: fake.closed == 1)
        assert feed.handovers == 0
    finally:
        assert feed.stop()
    assert feed.events == 1


# ------------------------------------------------------------------------ the view


def test_the_view_redraws_only_touched_figures_and_shows_the_last_change(seeded: Engine) -> None:
    pytest.importorskip("ipywidgets")
    from miyabi_analytics.widgets import DashboardView

    repo = uuid.uuid4()
    running = save(seeded, "SalesAgent", repo, status="running", started_at=INSIDE)
    fake = FakeWatch(idle=WAIT_SECONDS)  # the view's feed hands over streams of watch's timeout
    view = DashboardView(model_of(seeded), live=True, source=fake)
    try:
        assert "waiting for changes" in view.live_status.value
        success = view.figures["success"].data[0]
        business = view.figures["business"].data[0]
        rate = view.tiles["success_rate"].value
        mark = last_transition(seeded)
        finish(seeded, running, "completed", quality_score=10)
        fake.put(events_after(seeded, mark))
        live = view.live
        assert live is not None
        wait_until(lambda: live.feed.events == 1)  # running -> completed, applied
        assert view.figures["success"].data[0] is not success  # redrawn
        assert view.figures["business"].data[0] is business  # not touched: kept
        assert view.tiles["success_rate"].value != rate
        assert "after a change" in view.status.value
    finally:
        view.close()
    assert view.live is None
    assert fake.closed == fake.opened


def test_a_source_that_cannot_open_raises_from_start() -> None:
    def source() -> Iterator[TransitionEvent]:
        raise ConnectionError("no such server")

    feed = LiveFeed(source, lambda _batch: None)
    with pytest.raises(ConnectionError):
        feed.start()
    assert not feed.running


def test_live_mode_on_an_in_memory_database_is_refused_at_once() -> None:
    pytest.importorskip("ipywidgets")
    from miyabi_analytics.widgets import dashboard_view

    engine = ma.connect("sqlite://")
    ma.migrate(engine)
    try:
        with pytest.raises(ma.ValidationError) as refused:
            dashboard_view(engine, live=True)  # no other process can write to it
        assert refused.value.field == "engine"
        assert not [t for t in threading.enumerate() if t.name.startswith("miyabi-live")]
    finally:
        engine.dispose()


def test_closing_the_app_widget_stops_live_mode(seeded: Engine) -> None:
    pytest.importorskip("ipywidgets")
    from miyabi_analytics.widgets import DashboardView

    fake = FakeWatch(idle=WAIT_SECONDS)
    view = DashboardView(model_of(seeded), live=True, source=fake)
    live = view.live
    assert live is not None
    wait_until(lambda: fake.opened >= 1)
    view.widget.close()  # what a notebook does with the app (dashboard() returns only it)
    assert view.live is None
    wait_until(lambda: not live.feed.running)
    assert fake.closed == fake.opened


# ---------------------------------------------------- no leaks over a thousand events


def pg_connections(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            ).scalar_one()
        )


def watch_connections(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = :name"
                ),
                {"name": APPLICATION_NAME},
            ).scalar_one()
        )


def listening_live(model: DashboardModel, source: FakeWatch | None, **options: Any) -> LiveModel:
    """A started LiveModel, returned once its source is open (``watch`` listens from its call)."""
    listening = threading.Event()

    def on_state(state: str, _error: BaseException | None) -> None:
        if state == "listening":
            listening.set()

    if source is not None:
        options.setdefault("idle", source.idle)
    live = LiveModel(model, source, on_state=on_state, **options).start()
    assert listening.wait(10)
    return live


def write_completed(engine: Engine, count: int) -> None:
    ma.ExecutionStore(engine).save_executions(
        ma.agent_for("SalesAgent")
        .builder(uuid.uuid4())
        .status("completed")
        .started_at(INSIDE)
        .completed_at(INSIDE + timedelta(seconds=n + 1))
        .build()
        for n in range(count)
    )


@pytest.mark.parametrize("kind", ["fake", "watch"])
def test_a_thousand_events_leak_no_thread_nor_connection(
    seeded: Engine, dialect: str, kind: str
) -> None:
    model = model_of(seeded)
    model.refresh()
    fake = FakeWatch() if kind == "fake" else None
    live = listening_live(model, fake, coalesce=0.02)
    threads_at_start = threading.active_count()
    connections: list[int] = []
    threads: list[int] = []
    try:
        for round_ in range(20):
            mark = last_transition(seeded)
            write_completed(seeded, 50)
            if fake is not None:
                fake.put(events_after(seeded, mark))
            expected = 50 * (round_ + 1)
            wait_until(lambda: live.feed.events == expected)  # noqa: B023 (called here, now)
            threads.append(threading.active_count())
            if dialect == "postgresql":
                connections.append(pg_connections(seeded))
        assert live.feed.events == 1000
        assert live.feed.batches >= 20
        assert max(threads) <= threads_at_start
        if dialect == "postgresql":  # the pool, plus watch's connection (two in a handover)
            assert max(connections) <= seeded.pool.size() + 2  # type: ignore[attr-defined]
            assert connections[-1] <= connections[0] + 1
            assert watch_connections(seeded) in ((1, 2) if kind == "watch" else (0,))
    finally:
        assert live.stop()
    assert threading.active_count() == threads_at_start - 2  # the feed's two threads ended
    if dialect == "postgresql":
        assert watch_connections(seeded) == 0  # watch's connection closed with it
    assert model.refresh().kpis[0].value == model_of(seeded).refresh().kpis[0].value


# Another process: plain SQL, one transaction; prints the time right after its commit.
WRITER = r"""
import sys, time
dialect, target, execution = sys.argv[1:4]
if dialect == "sqlite":
    import sqlite3
    conn = sqlite3.connect(target, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "UPDATE agent_executions SET status = 'completed', completed_at = "
        "strftime('%Y-%m-%d %H:%M:%f', 'now'), quality_score = 77 WHERE id = ?", (execution,)
    )
    conn.execute("COMMIT")
else:
    import psycopg
    with psycopg.connect(target) as conn, conn.transaction():
        conn.execute(
            "UPDATE agent_executions SET status = 'completed', completed_at = now(), "
            "quality_score = 77 WHERE id = %s", (execution,)
        )
print(repr(time.time()), flush=True)
"""


def test_watch_drives_a_refresh_within_2_s_of_another_process_commit(
    seeded: Engine, dialect: str
) -> None:
    running = save(
        seeded,
        "SalesAgent",
        uuid.uuid4(),
        status="running",
        started_at=datetime.now(UTC) - timedelta(minutes=5),
    )
    model = DashboardModel(seeded, DashboardFilters.build(since=SINCE))  # up to now
    before = model.refresh()
    seen: list[tuple[float, frozenset[str]]] = []
    live = listening_live(model, None, on_change=lambda _d, keys: seen.append((time.time(), keys)))
    try:
        url = seeded.url
        target = (
            str(url.database)
            if dialect == "sqlite"
            else url.set(drivername="postgresql").render_as_string(hide_password=False)
        )
        writer = subprocess.run(
            [sys.executable, "-c", WRITER, dialect, target, str(running.id)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        committed = float(writer.stdout.strip())
        wait_until(lambda: bool(seen))
    finally:
        assert live.stop()
    shown, keys = seen[0]
    assert keys == FINISH | {"stuck"}
    assert shown - committed < 2.0, f"{shown - committed:.2f} s"
    after = model.refresh()
    assert after.kpis[1].value != before.kpis[1].value
    assert_same_data(after, DashboardModel(seeded, model.filters).refresh())


def test_a_quiet_live_dashboard_sees_a_refresh_made_by_cron(seeded: Engine) -> None:
    """A refresh changes no execution (no event): the quiet feed reads the freshness again."""
    ma.refresh_rollups(seeded)
    with seeded.begin() as conn:  # a rescoring marks its day: the rollup is stale
        conn.execute(sa.text(
            "UPDATE agent_executions SET quality_score = 1 WHERE id = "
            "(SELECT id FROM agent_executions WHERE quality_score IS NOT NULL LIMIT 1)"))
    model = model_of(seeded)
    assert "1 day changed" in model.refresh().rollup
    changes: queue.SimpleQueue[tuple[str, frozenset[str]]] = queue.SimpleQueue()
    source = FakeWatch()
    live = LiveModel(model, source, idle=source.idle, freshness=0.0,
                     on_change=lambda data, keys: changes.put((data.rollup, keys)))
    assert live.quiet() == frozenset({"rollup"})
    assert changes.empty()  # read again, but the line did not move: nothing shown anew
    live.start()
    try:
        ma.refresh_rollups(seeded)  # as cron would: no event reaches the feed
        line, keys = changes.get(timeout=10)
    finally:
        live.stop()
    assert keys == frozenset({"rollup"})
    assert "up to date" in line
    assert model.refresh().rollup == line

"""Events from a source such as ``watch``, on a daemon thread, delivered in coalesced batches.

Why two threads: the watching one is blocked in the source most of the time; the delivering
one waits for the first event of a batch, then :data:`COALESCE_SECONDS` for more, and applies
the batch (queries, widget updates) while the watching one keeps reading.

Why a *successor* stream: ``watch(engine, timeout=...)`` yields what is committed after it is
called, and ends after ``timeout`` seconds without an event. Ending is how the watching thread
gets to notice that it was stopped (a generator blocked in another thread cannot be closed),
but a commit between the end of one stream and the call that opens the next would be seen by
neither. So once the current stream has been quiet for half its timeout, the delivering thread
opens the next one; the watching thread takes it over when the current one ends. If the
current stream yields an event in the meantime the successor is dropped (it is opened again
later); an event both saw at the boundary is passed on once (by ``transition_id``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Final

from miyabi_analytics.live import TransitionEvent

__all__ = [
    "COALESCE_SECONDS",
    "RETRY_SECONDS",
    "WAIT_SECONDS",
    "EventSource",
    "LiveFeed",
]

COALESCE_SECONDS: Final = 0.2
"""Events within this long of a batch's first event are applied with it, in one refresh."""
WAIT_SECONDS: Final = 5.0
"""``watch``'s timeout: a stopped feed notices within about this long when nothing happens."""
RETRY_SECONDS: Final = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Waits before opening the source again after it failed, one after another, the last repeated."""
_REMEMBERED: Final = 4096  # transition ids kept to pass an event seen by two streams on once

EventSource = Callable[[], Iterable[TransitionEvent]]
"""Opens a stream of events (listening from the call); called again when the last one ends."""


def _close(stream: Iterable[TransitionEvent] | None) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()


class LiveFeed:
    """Events from ``source`` on a daemon thread, delivered in coalesced batches on another.

    ``deliver(batch)`` runs on the delivering thread; ``on_state(state, error)`` reports
    ``"listening"``, ``"retrying"`` (the source failed: ``error``, opened again after a wait),
    ``"failed"`` (``deliver`` raised ``error``; the next batch is delivered) and ``"stopped"``.
    ``idle``: the source's streams end after that long without an event (``watch``'s
    ``timeout``); a successor is then opened ahead (see the module). :meth:`stop` ends both
    threads and closes the streams (a ``watch`` generator closes its connection).
    ``on_quiet()`` runs on the delivering thread every ``idle / 8`` seconds without an event.
    """

    def __init__(
        self,
        source: EventSource,
        deliver: Callable[[list[TransitionEvent]], object],
        *,
        coalesce: float = COALESCE_SECONDS,
        idle: float | None = WAIT_SECONDS,
        on_state: Callable[[str, BaseException | None], None] | None = None,
        on_quiet: Callable[[], object] | None = None,
    ) -> None:
        self._source = source
        self._on_quiet = on_quiet
        self._deliver = deliver
        self._coalesce = coalesce
        self._idle = idle
        self._on_state = on_state or (lambda _state, _error: None)
        self._queue: queue.SimpleQueue[TransitionEvent | None] = queue.SimpleQueue()
        self._stopped = threading.Event()
        self._guard = threading.Lock()  # the successor and what decides about it
        self._successor: Iterator[TransitionEvent] | None = None
        self._generation = 0  # streams taken so far by the watching thread
        self._quiet_since: float | None = None  # the current stream's last event (or start)
        self._recent: OrderedDict[int, None] = OrderedDict()
        self._threads = (
            threading.Thread(target=self._watch, name="miyabi-live-watch", daemon=True),
            threading.Thread(target=self._batches, name="miyabi-live-apply", daemon=True),
        )
        self.events = 0
        self.batches = 0
        self.handovers = 0

    @property
    def running(self) -> bool:
        """Whether either thread is still alive."""
        return any(t.is_alive() for t in self._threads)

    def start(self) -> None:
        """Open the first stream here, then start both threads (once).

        Opened in the caller's thread, so that what is committed once this returns is seen,
        and a source that cannot work at all (``watch`` on an in-memory SQLite database)
        raises here, to the caller.
        """
        first = iter(self._source())
        with self._guard:
            self._successor = first
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask both threads to end and wait up to ``timeout`` s; ``True`` if they did.

        ``None`` waits ``idle`` and a few seconds more: the watching thread notices a stop when
        its stream yields an event or ends.
        """
        self._stopped.set()
        self._queue.put(None)
        wait = (self._idle or WAIT_SECONDS) + 5.0 if timeout is None else timeout
        deadline = time.monotonic() + wait
        for thread in self._threads:
            if thread.ident is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        return not self.running or threading.current_thread() in self._threads

    # ------------------------------------------------------------------ watching thread

    def _watch(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            stream: Iterable[TransitionEvent] | None = None
            try:
                stream = self._take_successor() or iter(self._source())
                self._on_state("listening", None)
                for event in stream:
                    failures = 0
                    self._heard()
                    if self._is_new(event):
                        self._queue.put(event)
                    if self._stopped.is_set():
                        break
            # A thread has no caller to raise to: whatever the source raised is shown (its type
            # and text, on the indicator) and the source opened again after a wait.
            except Exception as exc:
                self._on_state("retrying", exc)
                self._stopped.wait(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
                failures += 1
            finally:
                _close(stream)
        with self._guard:
            successor, self._successor = self._successor, None
        _close(successor)
        self._on_state("stopped", None)

    def _take_successor(self) -> Iterator[TransitionEvent] | None:
        with self._guard:
            successor, self._successor = self._successor, None
            self._generation += 1
            self._quiet_since = time.monotonic()
        if successor is not None and self._generation > 1:  # the first one came from start()
            self.handovers += 1
        return successor

    def _heard(self) -> None:
        """The current stream yielded: a successor opened before that is dropped."""
        with self._guard:
            self._quiet_since = time.monotonic()
            successor, self._successor = self._successor, None
        _close(successor)

    def _is_new(self, event: TransitionEvent) -> bool:
        if event.transition_id in self._recent:
            return False
        self._recent[event.transition_id] = None
        if len(self._recent) > _REMEMBERED:
            self._recent.popitem(last=False)
        return True

    # ---------------------------------------------------------------- delivering thread

    def _prepare_successor(self) -> None:
        """Open the next stream once the current one was quiet for half of ``idle``."""
        with self._guard:
            quiet = self._quiet_since
            if self._idle is None or self._successor is not None or quiet is None:
                return
            if self._stopped.is_set() or time.monotonic() - quiet < self._idle / 2:
                return
            generation = self._generation
        try:
            successor: Iterator[TransitionEvent] | None = iter(self._source())
        except Exception:  # the watching thread's own reopen reports what is wrong
            return
        with self._guard:
            # Only this thread sets a successor; the current stream may have yielded or ended.
            if (
                self._generation == generation
                and self._quiet_since == quiet
                and not self._stopped.is_set()
            ):
                self._successor, successor = successor, None
        _close(successor)  # not needed after all

    def _next(self) -> TransitionEvent | None:
        """The first event of a batch; meanwhile, the successor is opened when it is time."""
        if self._idle is None:
            return self._queue.get()
        while True:
            try:
                return self._queue.get(timeout=self._idle / 8)
            except queue.Empty:
                self._prepare_successor()
                self._quiet()

    def _quiet(self) -> None:
        """Between events, on the delivering thread: ``on_quiet`` (its failure is reported)."""
        if self._on_quiet is None or self._stopped.is_set():
            return
        try:
            self._on_quiet()
        except Exception as exc:  # the next quiet moment tries again
            self._on_state("failed", exc)

    def _batches(self) -> None:
        while True:
            first = self._next()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self._coalesce
            ended = False
            while True:
                try:
                    remaining = deadline - time.monotonic()
                    following = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()  # what queued up while the last one ran
                    )
                except queue.Empty:
                    break
                if following is None:
                    ended = True
                    break
                batch.append(following)
            if self._stopped.is_set():
                return
            try:
                self._deliver(batch)
            except Exception as exc:  # reported; the next batch is applied
                self._on_state("failed", exc)
            self.events += len(batch)  # counted once applied: a caller may wait for it
            self.batches += 1
            if ended:
                return

"""Nasty passwords in database URLs: they work as meant or are refused, and never show.

Each password is ``<token>`` + nasty characters + ``<token>``, two random alphanumeric tokens: a
text that holds either token holds (part of) the password, whatever escaping or splitting befell
it (URL quoting, ``repr``, a host name made of the part after a raw ``@``). Every path collects
what it shows: repr/str of engines, URLs and stores, error messages, ``repr`` and traceback of
each exception and of every ``__cause__``/``__context__`` in its chain, every log record at
DEBUG (root, sqlalchemy.engine, sqlalchemy.pool, alembic, psycopg, miyabi_analytics), every
warning, and the CLI's stdout and stderr; no token may appear in any of it.

The URLs are written three ways: raw (the password pasted as is), percent-encoded, and in the
query (``?password=``). A raw URL means what :func:`miyabi_analytics._db.engine.resolve_url`
documents: everything between ``://`` and the last ``@`` is ``user:password``, percent-decoded
(so a raw ``%40`` is ``@``, as in any URL, and a raw ``%`` that starts no valid UTF-8 escape is
refused with a masked message). The test server trusts local logins, so the password is not
checked by the server; what libpq received is read back from psycopg's ``info.password``.
"""

import logging
import secrets
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from sqlalchemy import URL, Engine, make_url, text

import miyabi_analytics as ma
from miyabi_analytics._db.engine import resolve_url
from miyabi_analytics.cli import main

PG_ONLY = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
LOGGERS = ("", "sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", "alembic", "psycopg",
           "miyabi_analytics")

# The characters between the two tokens.
NASTY = {
    "slash": "/",
    "space": " ",
    "at": "@",
    "two-ats": "@x@",
    "at-then-colon": "@h:5432/",
    "hash": "#",
    "question": "?",
    "colon": ":",
    "percent": "%",
    "percent-40": "%40",
    "percent-bad-utf8": "%bb",
    "unicode": "ü日本🔑",
    "quotes": "'\"",
    "backslash": "\\",
    "newline": "\n",
    "ampersand": "&",
    "very-long": "L" * 3000 + "@/ :" + "M" * 3000,
    "everything": "/ @#?:%'\"\\\n&=ü",
}


def _token() -> str:
    return "Zq" + secrets.token_hex(6) + "Xw"  # letters around hex: no percent escape forms


@dataclass
class Password:
    name: str
    tokens: tuple[str, str] = field(default_factory=lambda: (_token(), _token()))

    @property
    def value(self) -> str:
        return self.tokens[0] + NASTY[self.name] + self.tokens[1]

    @property
    def raw_meaning(self) -> str | None:
        """What a raw URL means (percent-decoded), ``None`` where it must be refused."""
        try:
            return unquote(self.value, errors="strict")
        except UnicodeDecodeError:
            return None


@dataclass
class Shown:
    """Everything a path showed; ``check`` asserts that no token is in any of it."""

    password: Password
    texts: list[str] = field(default_factory=list)

    def keep(self, *items: object) -> None:
        self.texts.extend(str(item) for item in items)

    def error(self, exc: BaseException) -> None:
        self.keep("".join(traceback.format_exception(exc)))
        seen: set[int] = set()
        current: BaseException | None = exc
        chain = [exc]
        while chain:
            current = chain.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            self.keep(str(current), repr(current), repr(current.args))
            self.keep(*getattr(current, "__notes__", ()))
            chain.extend(e for e in (current.__cause__, current.__context__) if e is not None)
            orig = getattr(current, "orig", None)
            if isinstance(orig, BaseException):
                chain.append(orig)

    def expect_error(self, action: Callable[[], object]) -> BaseException:
        try:
            action()
        except Exception as exc:  # every kind: the point is what it shows
            self.error(exc)
            return exc
        raise AssertionError("raised nothing")

    def check(
        self,
        caplog: pytest.LogCaptureFixture,
        caught: list[warnings.WarningMessage],
        *,
        logged: bool = True,
    ) -> None:
        corpus = list(self.texts)
        for record in caplog.records:
            corpus += [record.getMessage(), repr(record.args), str(record.msg)]
            if record.exc_info and record.exc_info[1] is not None:
                corpus.append("".join(traceback.format_exception(*record.exc_info)))
        corpus.append(caplog.text)
        corpus += [str(w.message) for w in caught]
        leaks = [c for c in corpus if any(t in c for t in self.password.tokens)]
        assert not leaks, leaks[0][:3000]
        assert (len(caplog.records) > 0) is logged  # logging was captured at all


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    # Before any engine exists: SQLAlchemy decides whether to log statements when it creates one.
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    return caplog


@pytest.fixture
def all_warnings() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def with_password(url: URL, form: str, password: str, **changes: Any) -> str:
    """``url`` (no password) as text, with ``password`` written in ``form``."""
    base = url.set(**changes).render_as_string(hide_password=False)
    scheme, _, rest = base.partition("://")
    user = quote(url.username or "", safe="")
    rest = rest.partition("@")[2] if "@" in rest else rest
    if form == "raw":
        return f"{scheme}://{user}:{password}@{rest}"
    if form == "encoded":
        return f"{scheme}://{user}:{quote(password, safe='')}@{rest}"
    assert form == "query"
    sep = "&" if "?" in rest else "?"
    return f"{scheme}://{user}@{rest}{sep}password={quote(password, safe='')}"


def used_password(engine: Engine) -> str:
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
        return str(dbapi.info.password)


def _params() -> list[Any]:
    return [pytest.param(Password(name), id=name) for name in NASTY]


# -- the Python API ------------------------------------------------------------------------------


@PG_ONLY
@pytest.mark.parametrize("form", ["raw", "encoded", "query"])
@pytest.mark.parametrize("password", _params())
def test_api_paths(db_url, password, form, debug_logs, all_warnings, monkeypatch):
    shown = Shown(password)
    pw = password.value
    good = with_password(db_url, form, pw)
    meaning = password.raw_meaning if form == "raw" else pw

    if meaning is None:  # a raw "%" that starts no UTF-8 escape: refused, masked
        err = shown.expect_error(lambda: ma.connect(good))
        assert isinstance(err, ma.ValidationError)
        assert err.field == "url"
        assert "***" in str(err)
        monkeypatch.setenv("MIYABI_DATABASE_URL", good)
        assert isinstance(shown.expect_error(ma.connect), ma.ValidationError)
        assert isinstance(shown.expect_error(lambda: ma.migrate(good)), ma.ValidationError)
        shown.keep(ma.mask_url(good))
        shown.check(debug_logs, all_warnings, logged=False)
        return

    # Works as meant: the exact password reaches libpq; the host and database are the right ones.
    engine = ma.connect(good)
    try:
        assert (engine.url.host, engine.url.database) == (db_url.host, db_url.database)
        assert engine.url.username == db_url.username
        assert used_password(engine) == meaning
        shown.keep(repr(engine), str(engine), repr(engine.url), str(engine.url))
        shown.keep(ma.mask_url(engine.url), ma.mask_url(good), repr(ma.ExecutionStore(engine)))
        shown.keep(repr(resolve_url(good)), str(resolve_url(good)))
        ma.migrate(engine)
        ma.migrate(good)
        record = ma.SalesAgent().builder(uuid.uuid4()).status("running").started_at(
            datetime.now(UTC) - timedelta(days=2)
        ).build()
        ma.SalesAgent().save_execution(engine, record)
        shown.keep(ma.ExecutionStore(engine).reap("1h"), ma.read_summary(engine).to_string())
    finally:
        engine.dispose()
    monkeypatch.setenv("MIYABI_DATABASE_URL", good)
    env_engine = ma.connect()
    try:
        assert used_password(env_engine) == meaning
        shown.keep(repr(env_engine), str(env_engine.url))
    finally:
        env_engine.dispose()
    monkeypatch.delenv("MIYABI_DATABASE_URL")

    # Every error path, with the same credentials.
    failing = {
        "closed port": with_password(db_url, form, pw, port=1),
        "no such database": with_password(db_url, form, pw, database="miyabi_no_such_db"),
        "unknown host": with_password(db_url, form, pw, host="miyabi-no-such-host.invalid"),
    }
    for url in failing.values():
        engine = ma.connect(url)  # opens nothing yet
        shown.keep(repr(engine), str(engine.url))
        shown.expect_error(lambda engine=engine: used_password(engine))
        shown.expect_error(lambda engine=engine: ma.ExecutionStore(engine).reap("1h"))
        shown.expect_error(lambda engine=engine: ma.migrate(engine))
        shown.expect_error(lambda url=url: ma.migrate(url))
        engine.dispose()
    refused = [
        good.replace(":5432/", ":notaport/"),  # does not parse
        good.replace("://", ":/", 1),  # does not parse
        "mysql" + good[good.index(":") :],  # parses, unsupported
        good.replace("postgresql+psycopg", "postgresql+asyncpg", 1),
    ]
    for url in refused:
        err = shown.expect_error(lambda url=url: ma.connect(url))
        assert isinstance(err, ma.ValidationError), err
        assert err.__context__ is None  # no parser error chained
        assert err.__cause__ is None
        shown.expect_error(lambda url=url: ma.migrate(url))
        shown.keep(ma.mask_url(url))
    shown.check(debug_logs, all_warnings)


@PG_ONLY
@pytest.mark.parametrize("name", ["at", "two-ats"])
def test_url_objects_split_at_a_raw_at_are_refused_masked(db_url, name, debug_logs, all_warnings):
    """SQLAlchemy's own make_url ends the password at its first "@": the rest is in the host."""
    password = Password(name)
    shown = Shown(password)
    misparsed = make_url(with_password(db_url, "raw", password.value))
    assert password.tokens[1] in (misparsed.host or "")
    err = shown.expect_error(lambda: ma.connect(misparsed))
    assert isinstance(err, ma.ValidationError)
    assert "%40" in str(err)
    shown.keep(ma.mask_url(misparsed))
    shown.check(debug_logs, all_warnings, logged=False)


# -- the command line ----------------------------------------------------------------------------


def run_cli(shown: Shown, capfd: pytest.CaptureFixture[str], argv: list[str]) -> object:
    try:
        status: object = main(argv)
    except SystemExit as exc:
        status = exc.code
    out = capfd.readouterr()
    shown.keep(out.out, out.err)
    assert "Traceback" not in out.err
    return status


COMMANDS = {
    "migrate": ["migrate"],
    "reap": ["reap", "--stale-after", "1h"],
    "purge": ["purge", "--older-than", "30d"],
    "report": ["report", "--format", "ipynb"],
    "demo": ["demo", "--executions", "10"],
}


@PG_ONLY
@pytest.mark.parametrize("password", _params())
def test_cli_paths(db_url, password, capfd, debug_logs, all_warnings, monkeypatch, tmp_path):
    shown = Shown(password)
    pw = password.value
    monkeypatch.chdir(tmp_path)  # report and demo write their files here
    for name in ("MIYABI_DATABASE_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    forms = ["raw", "encoded"] if password.raw_meaning is not None else ["encoded"]
    for form in forms:
        good = with_password(db_url, form, pw)
        for command in ("migrate", "reap", "purge"):
            argv = COMMANDS[command]
            assert run_cli(shown, capfd, [argv[0], "--url", good, *argv[1:]]) == 0, command
            monkeypatch.setenv("MIYABI_DATABASE_URL", good)
            assert run_cli(shown, capfd, argv) == 0, command
            monkeypatch.delenv("MIYABI_DATABASE_URL")
    cases = {
        with_password(db_url, forms[0], pw, port=1): 1,  # unreachable: a database error
        with_password(db_url, "encoded", pw, database="miyabi_no_such_db"): 1,
        with_password(db_url, "raw", pw).replace(":5432/", ":notaport/"): 2,  # bad input
        "mysql" + with_password(db_url, "raw", pw)[len("postgresql+psycopg") :]: 2,
    }
    if password.raw_meaning is None:
        cases[with_password(db_url, "raw", pw)] = 2  # refused as not UTF-8 percent-encoding
    for url, expected in cases.items():
        for command, argv in COMMANDS.items():
            status = run_cli(shown, capfd, [argv[0], "--url", url, *argv[1:]])
            assert status == expected, (command, status, shown.texts[-1][-500:])
            monkeypatch.setenv("MIYABI_DATABASE_URL", url)
            assert run_cli(shown, capfd, argv) == expected, command
            monkeypatch.delenv("MIYABI_DATABASE_URL")
    assert not any(p.suffix in (".html", ".ipynb") for p in Path(tmp_path).iterdir())
    shown.check(debug_logs, all_warnings)


@PG_ONLY
@pytest.mark.slow
def test_cli_demo_and_report_with_a_raw_nasty_password(db_url, capfd, debug_logs, all_warnings,
                                                       monkeypatch, tmp_path):
    """The full demo and report, the kernel reading the URL from its environment."""
    password = Password("everything")
    shown = Shown(password)
    monkeypatch.chdir(tmp_path)
    raw = with_password(db_url, "raw", password.value)
    report = tmp_path / "demo.html"
    argv = ["demo", "--url", raw, "--executions", "30", "--seed", "5", "--output", str(report)]
    assert run_cli(shown, capfd, argv) == 0
    monkeypatch.setenv("MIYABI_DATABASE_URL", raw)
    second = tmp_path / "report.ipynb"
    assert run_cli(shown, capfd, ["report", "--format", "ipynb", "--output", str(second)]) == 0
    for path in (report, second):
        shown.keep(path.read_text(encoding="utf-8"))
    engine = ma.connect()
    try:
        shown.keep(ma.read_report_runs(engine).to_dict("records"))
    finally:
        engine.dispose()
    shown.check(debug_logs, all_warnings)

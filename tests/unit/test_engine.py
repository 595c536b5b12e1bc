import traceback
from pathlib import Path

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import OperationalError

import miyabi_analytics as ma

SECRET = "s3cr3t-Pa55"
ENV_VARS = ("MIYABI_DATABASE_URL", "DATABASE_URL")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # the default URL is relative to the working directory
    return monkeypatch


def _url_of(*args: object) -> str:
    engine = ma.connect(*args)  # type: ignore[arg-type]
    try:
        return engine.url.render_as_string(hide_password=False)
    finally:
        engine.dispose()


# -- resolution order ----------------------------------------------------------------------


def test_explicit_argument_wins(clean_env, tmp_path):
    clean_env.setenv("MIYABI_DATABASE_URL", f"sqlite:///{tmp_path / 'miyabi_env.db'}")
    clean_env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'database_env.db'}")
    assert _url_of(f"sqlite:///{tmp_path / 'arg.db'}") == f"sqlite:///{tmp_path / 'arg.db'}"


def test_explicit_url_object_wins(clean_env, tmp_path):
    clean_env.setenv("MIYABI_DATABASE_URL", f"sqlite:///{tmp_path / 'miyabi_env.db'}")
    url = make_url(f"sqlite:///{tmp_path / 'arg.db'}")
    assert _url_of(url) == str(url)


def test_miyabi_database_url_before_database_url(clean_env, tmp_path):
    clean_env.setenv("MIYABI_DATABASE_URL", f"sqlite:///{tmp_path / 'miyabi_env.db'}")
    clean_env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'database_env.db'}")
    assert _url_of() == f"sqlite:///{tmp_path / 'miyabi_env.db'}"
    assert _url_of(None) == f"sqlite:///{tmp_path / 'miyabi_env.db'}"


def test_database_url_when_miyabi_unset(clean_env, tmp_path):
    clean_env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'database_env.db'}")
    assert _url_of() == f"sqlite:///{tmp_path / 'database_env.db'}"


def test_default_when_nothing_set(clean_env, tmp_path):
    assert _url_of() == "sqlite:///miyabi.db"
    assert not (tmp_path / "miyabi.db").exists()  # connect() alone creates nothing


def test_default_file_lands_in_working_directory(clean_env, tmp_path):
    engine = ma.connect()
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()
    assert (tmp_path / "miyabi.db").is_file()


def test_environment_read_at_call_time(clean_env, tmp_path):
    first = _url_of()
    clean_env.setenv("MIYABI_DATABASE_URL", f"sqlite:///{tmp_path / 'late.db'}")
    assert first == "sqlite:///miyabi.db"
    assert _url_of() == f"sqlite:///{tmp_path / 'late.db'}"


# -- driver mapping ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgres://user@db.example:5432/miyabi",
        "postgresql://user@db.example:5432/miyabi",
        "postgresql+psycopg://user@db.example:5432/miyabi",
    ],
)
def test_postgres_urls_use_psycopg3(clean_env, url):
    engine = ma.connect(url)
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        assert engine.dialect.name == "postgresql"
        assert engine.dialect.driver == "psycopg"
        assert (engine.url.host, engine.url.port, engine.url.database) == (
            "db.example", 5432, "miyabi"
        )
    finally:
        engine.dispose()


def test_postgres_url_from_environment_uses_psycopg3(clean_env):
    clean_env.setenv("DATABASE_URL", "postgres://user@db.example/miyabi")
    assert _url_of().startswith("postgresql+psycopg://")


# -- password masking ----------------------------------------------------------------------


def test_engine_repr_and_str_mask_the_password(clean_env):
    engine = ma.connect(f"postgresql://miyabi:{SECRET}@127.0.0.1:1/miyabi")
    try:
        for shown in (repr(engine), str(engine), repr(engine.url), str(engine.url)):
            assert SECRET not in shown
            assert "***" in shown
    finally:
        engine.dispose()


def test_store_repr_masks_the_password(clean_env):
    engine = ma.connect(f"postgresql://miyabi:{SECRET}@127.0.0.1:1/miyabi")
    try:
        shown = repr(ma.ExecutionStore(engine))
        assert SECRET not in shown
        assert "127.0.0.1" in shown
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://miyabi:{SECRET}@db.example:5432/miyabi",
        f"postgres://miyabi:{SECRET}@db.example/miyabi",
        f"postgresql+psycopg://miyabi:{SECRET}@db.example/miyabi?sslmode=require",
    ],
)
def test_mask_url(url):
    for given in (url, make_url(url)):
        masked = ma.mask_url(given)
        assert SECRET not in masked
        assert "miyabi:***@db.example" in masked


def test_mask_url_leaves_passwordless_urls_alone():
    assert ma.mask_url("sqlite:///miyabi.db") == "sqlite:///miyabi.db"
    assert ma.mask_url("postgresql://u@h/db") == "postgresql://u@h/db"


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://miyabi:{SECRET}@db.example/miyabi",
        f"postgresql+psycopg2://miyabi:{SECRET}@db.example/miyabi",
        f"postgresql://miyabi:{SECRET}@db.example:notaport/miyabi",
        f"oracle://miyabi:{SECRET}@db.example/miyabi",
    ],
)
def test_bad_url_error_masks_the_password(clean_env, url):
    with pytest.raises(ma.ValidationError) as info:
        ma.connect(url)
    err = info.value
    assert err.field == "url"
    for shown in (str(err), repr(err), repr(err.args), repr(err.value)):
        assert SECRET not in shown
    assert "***" in str(err)
    formatted = "".join(traceback.format_exception(err))
    assert SECRET not in formatted


def test_bad_url_from_environment_masks_the_password(clean_env):
    clean_env.setenv("MIYABI_DATABASE_URL", f"mysql://miyabi:{SECRET}@db.example/miyabi")
    with pytest.raises(ma.ValidationError) as info:
        ma.connect()
    assert SECRET not in str(info.value)


def test_garbage_url_is_a_validation_error(clean_env):
    with pytest.raises(ma.ValidationError) as info:
        ma.connect("this is not a url")
    assert info.value.field == "url"


# -- no I/O in connect() ---------------------------------------------------------------------


def test_connect_opens_no_sqlite_file_until_first_use(clean_env, tmp_path):
    path = tmp_path / "lazy.db"
    engine = ma.connect(f"sqlite:///{path}")
    try:
        assert not path.exists()
        assert engine.pool.checkedout() == 0
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert path.is_file()
    finally:
        engine.dispose()


def test_connect_to_closed_port_fails_only_at_first_use_and_masks(clean_env):
    engine = ma.connect(f"postgresql://miyabi:{SECRET}@127.0.0.1:1/miyabi")  # no error here
    try:
        with pytest.raises(OperationalError) as info, engine.connect():
            pass
        err = info.value
        texts = [str(err), repr(err), "".join(traceback.format_exception(err))]
        cause = err.__cause__ or err.orig
        texts += [str(cause), repr(cause)]
        for shown in texts:
            assert SECRET not in shown
    finally:
        engine.dispose()


def test_migrate_against_closed_port_masks_the_password(clean_env):
    with pytest.raises(OperationalError) as info:
        ma.migrate(f"postgresql://miyabi:{SECRET}@127.0.0.1:1/miyabi")
    assert SECRET not in "".join(traceback.format_exception(info.value))


def test_password_in_the_query_string_is_masked_too():
    engine = ma.connect("postgresql://someone@db.example/x?password=hunter2&sslmode=disable")
    try:
        assert "hunter2" not in repr(engine)
        assert "hunter2" not in str(engine.url)
        assert engine.url.password == "hunter2"  # still used to connect
        assert engine.url.query["sslmode"] == "disable"
    finally:
        engine.dispose()
    assert "hunter2" not in ma.mask_url("postgresql://someone@db/x?sslmode=off&password=hunter2")
    assert "hunter2" not in ma.mask_url(make_url("postgresql://someone@db/x?password=hunter2"))

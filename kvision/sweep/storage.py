"""Where a sweep's Optuna study lives: a journal file in the sweep directory (one machine), or a
database that several machines share (Optuna's RDB storage, an SQLAlchemy URL).

Opening a database turns every way it can go wrong (no driver for the URL's scheme, a server
that does not answer, a refused password, a URL that is not one) into one KvisionError
paragraph before anything of a study is read or written. The password of a URL is never
printed nor stored: :func:`shown` masks it, :func:`without_password` drops it (libpq's
``PGPASSWORD`` or ``~/.pgpass`` supply it again).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

from kvision.errors import KvisionError

# The driver kvision installs for a bare scheme (``postgresql://``), so the URL means the same
# whatever SQLAlchemy's own default is; and what to install when it is missing.
DRIVERS = {
    "postgresql": ("postgresql+psycopg", "pip install 'kvision[postgres]' (the psycopg driver)"),
    "mysql": ("mysql+pymysql", "pip install pymysql"),
}
#: Query parameters that carry a secret (libpq's ``password``, ``sslpassword``).
SECRET_QUERY_KEYS = ("password", "sslpassword")
CONNECT_TIMEOUT_S = 10  # a firewalled host fails in seconds, not minutes
SQLITE_BUSY_S = 60  # how long an SQLite writer waits for the others before giving up


def is_url(text: str | None) -> bool:
    """Whether ``text`` is a database URL (``scheme://...``) rather than a path."""
    return bool(text) and "://" in str(text)


def shown(url: str) -> str:
    """The URL as it may be printed: the password masked (``***``), also in the query."""
    try:
        parsed = _parse(url)
    except KvisionError:
        return url.split("@")[-1]
    query = {k: ("***" if k.lower() in SECRET_QUERY_KEYS else v) for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)


def without_password(url: str) -> str:
    """The URL as it may be written to a file: no password, neither in its user part nor in
    its query (libpq reads ``?password=``).

    Built anew: SQLAlchemy's ``URL.set(password=None)`` means "leave it as it is".
    """
    import sqlalchemy.engine

    parsed = _parse(url)
    query = {k: v for k, v in parsed.query.items() if k.lower() not in SECRET_QUERY_KEYS}
    return sqlalchemy.engine.URL.create(
        parsed.drivername,
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=query,
    ).render_as_string(hide_password=False)


def journal_storage(path: Path) -> Any:
    """Optuna's journal file (the default, one machine): ``path`` is created if absent."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path)))


def open_database(
    url: str, *, heartbeat: int | None = None, grace: int | None = None, on_stale: Any = None
) -> Any:
    """Optuna's RDB storage at ``url``, connected and checked; problems raise KvisionError.

    ``heartbeat``/``grace`` (seconds) turn on Optuna's heartbeat: a RUNNING trial whose
    worker has not beaten for ``grace`` seconds is failed and handed to ``on_stale``.
    """
    import sqlalchemy.exc

    parsed = _with_driver(_parse(url))
    try:
        storage = _connect(parsed, heartbeat=heartbeat, grace=grace, on_stale=on_stale)
    except ImportError as exc:  # the DBAPI module of the URL's dialect
        raise KvisionError(_missing_driver(url, parsed, exc)) from None
    except sqlalchemy.exc.ArgumentError as exc:
        raise KvisionError(
            f"The storage URL '{shown(url)}' is not one SQLAlchemy can use: "
            f"{exc}. Write it as dialect://user@host:port/database, e.g. "
            "postgresql://kvision@db.lab:5432/sweeps."
        ) from None
    except sqlalchemy.exc.DBAPIError as exc:
        raise KvisionError(_unreachable(url, exc)) from None
    if parsed.get_backend_name() == "sqlite":
        _serialize_sqlite(storage.engine)
    return storage


def _connect(
    url: Any, *, heartbeat: int | None, grace: int | None, on_stale: Any, attempts: int = 5
) -> Any:
    """RDBStorage, which creates Optuna's tables in a new database. Workers started together
    on a new database race to create them, and all but one may fail on a unique key or an
    "already exists": by then the tables are there, so such a loser tries again."""
    import sqlalchemy.exc
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage

    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # the heartbeat is "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", ExperimentalWarning)
                return RDBStorage(
                    url.render_as_string(hide_password=False),
                    engine_kwargs=_engine_kwargs(url),
                    heartbeat_interval=heartbeat,
                    grace_period=grace,
                    **_stale_callback(on_stale),
                )
        except sqlalchemy.exc.DBAPIError as exc:
            # a unique key of the schema (a type, alembic's version row), or a table
            racing = isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in str(exc)
            if not racing or attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("not reached")


def _parse(url: str) -> Any:
    import sqlalchemy.engine
    import sqlalchemy.exc

    try:
        return sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError) as exc:  # ValueError: a port not a number
        why = "its port is not a number" if isinstance(exc, ValueError) else "it is not one"
        raise KvisionError(
            f"'{url.split('@')[-1]}' is not a database URL ({why}). --storage takes an "
            "SQLAlchemy URL such as postgresql://user@host:5432/database, "
            "mysql://user@host/database or sqlite:////shared/sweeps.db."
        ) from None


def _with_driver(url: Any) -> Any:
    if "+" in url.drivername or url.drivername not in DRIVERS:
        return url
    return url.set(drivername=DRIVERS[url.drivername][0])


def _engine_kwargs(url: Any) -> dict:
    backend = url.get_backend_name()
    if backend == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_S}}
    if backend in ("postgresql", "mysql"):
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}, "pool_pre_ping": True}
    return {}


def _stale_callback(on_stale: Any) -> dict:
    """Optuna 4.9 renamed failed_trial_callback; pass the name this Optuna knows."""
    import inspect

    from optuna.storages import RDBStorage

    if on_stale is None:
        return {}
    names = inspect.signature(RDBStorage.__init__).parameters
    key = (
        "heartbeat_stale_trial_callback"
        if "heartbeat_stale_trial_callback" in names
        else "failed_trial_callback"
    )
    return {key: on_stale}


def _missing_driver(url: str, parsed: Any, exc: ImportError) -> str:
    hint = DRIVERS.get(
        parsed.get_backend_name(), (None, "install the DBAPI driver SQLAlchemy names")
    )[1]
    return (
        f"The storage URL '{shown(url)}' needs the Python database driver "
        f"'{exc.name or parsed.get_driver_name()}', which is not installed here: {hint}. "
        "Every machine of a shared sweep needs it."
    )


def _unreachable(url: str, exc: Any) -> str:
    """One paragraph for a connection that failed: refused password, or no server."""
    detail = " ".join(str(getattr(exc, "orig", exc)).split())
    refused = any(
        s in detail.lower()
        for s in (
            "password authentication failed",
            "access denied",
            "authentication failed",
            "no password supplied",
        )
    )
    if refused:
        return (
            f"The database at '{shown(url)}' refused the user or password: {detail}. Check "
            "the user name and password in the URL (or in PGPASSWORD / ~/.pgpass)."
        )
    return (
        f"Cannot reach the sweep database '{shown(url)}': {detail}. Check that the server "
        "runs and that this machine can reach its host and port (firewall, listen_addresses), "
        "and that the database exists."
    )


def _serialize_sqlite(engine: Any) -> None:
    """Make every SQLite transaction take the write lock at its start (BEGIN IMMEDIATE).

    Python's sqlite3 module begins a transaction only at the first write, so two workers
    could both read a trial as WAITING and both claim it; begun IMMEDIATE, the second waits
    until the first has committed and then reads RUNNING. (PostgreSQL and MySQL get the same
    from Optuna's SELECT ... FOR UPDATE.) SQLAlchemy's documented recipe for pysqlite.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" below says when

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened while Optuna set up its tables lack the hooks


__all__ = ["is_url", "journal_storage", "open_database", "shown", "without_password"]

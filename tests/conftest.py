"""Fixtures shared by the test files (plain helpers are in helpers.py).

* ``agi``, ``pbx_config``, ``pbx``, ``ami``: the PBX simulator with a tiny
  FastAGI server playing the engine's part and a logged-in AMI probe.  A
  module changes the simulator's configuration by overriding ``pbx_config``.
* ``db`` (SQLite), ``postgres_db``: a database with the engine's tables,
  disposed of after the test; ``postgres_db`` skips the test, saying why,
  when no PostgreSQL server answers at :data:`PG_URL`.
* ``mqtt_broker``: a Mosquitto broker of the test's own; skips the test,
  saying why, when Mosquitto is not installed.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import db_url, sim_config
from mqtt_broker import MOSQUITTO, Broker
from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError

from acd.adapters.storage import Database
from sim import SimConfig, SimPBX
from sim.testkit import AgiScriptServer, AmiProbe

#: the shared test database; each test gets a schema of its own in it
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"

# ------------------------------------------------------------ PBX simulator


@pytest.fixture
async def agi() -> AsyncIterator[AgiScriptServer]:
    """A FastAGI server with no script yet: a test sets ``agi.scripts``."""
    async with AgiScriptServer() as server:
        yield server


@pytest.fixture
def pbx_config(agi: AgiScriptServer) -> SimConfig:
    """The ``pbx`` fixture's configuration (:func:`helpers.sim_config`)."""
    return sim_config(agi)


@pytest.fixture
async def pbx(pbx_config: SimConfig) -> AsyncIterator[SimPBX]:
    async with SimPBX(pbx_config) as sim:
        yield sim


@pytest.fixture
async def ami(pbx: SimPBX) -> AsyncIterator[AmiProbe]:
    probe = await AmiProbe.connect(pbx.ami_port)
    resp = await probe.login()
    assert resp.response == "Success"
    yield probe
    await probe.close()


# ---------------------------------------------------------------- databases


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A SQLite database in ``tmp_path`` with the engine's tables."""
    d = Database(db_url(tmp_path))
    await d.create()
    try:
        yield d
    finally:
        await d.dispose()


@pytest.fixture
async def postgres_db() -> AsyncIterator[Database]:
    """A PostgreSQL database with the engine's tables in a schema of its own
    (unique name, created, then dropped with everything in it), so that it
    cannot touch other tables of the shared ``test`` database or another
    test run."""
    schema = f"acd_test_{uuid.uuid4().hex[:12]}"
    d = Database(PG_URL)

    @event.listens_for(d.engine.sync_engine, "connect")
    def _search_path(dbapi_conn: Any, _rec: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f'SET search_path TO "{schema}"')
        cur.close()

    try:
        async with d.engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except (OSError, SQLAlchemyError) as exc:
        await d.dispose()
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc}")
    try:
        await d.create()
        yield d
    finally:
        async with d.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await d.dispose()


# --------------------------------------------------------------------- MQTT


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[Broker]:
    """A running Mosquitto broker on a free port; a test may stop and start
    it again.  Stopped at the end."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt install mosquitto); "
                    "this test runs a real broker")
    broker = Broker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()

"""AstDB: Asterisk's small key/value store (main/db.c), kept in memory.

Asterisk keeps one SQLite table ``astdb(key, value)``; every access builds
the full key ``/<family>/<key>`` (``ast_db_put``, ``db_get_common``,
``ast_db_del2``), so ``DBGet Family=acd Key=answered/1001`` and
``Family=acd/answered Key=1001`` name the same row.  The dialplan writes it
with ``Set(DB(family/key)=value)`` (funcs/func_db.c, split at the *first*
``/``), AMI reads it with ``DBGet``.  It lives on disk, so it outlives AMI
sessions and Asterisk restarts: one :class:`AstDB` belongs to a
:class:`sim.pbx.SimPBX` (which survives ``stop``/``start``) and can be handed
to a new one (``SimPBX(cfg, astdb=old.astdb)``) to play a restarted
Asterisk.  Tests read it with :meth:`AstDB.get` / :meth:`AstDB.items` and
empty it with :meth:`AstDB.clear`.
"""

from __future__ import annotations


class AstDB:
    """The ``astdb`` table: full key (``/family/key``) -> value."""

    def __init__(self) -> None:
        self._rows: dict[str, str] = {}

    @staticmethod
    def full_key(family: str, key: str) -> str:
        """``ast_asprintf(&fullkey, "/%s/%s", family, key)``."""
        return f"/{family}/{key}"

    def put(self, family: str, key: str, value: str) -> None:
        """``ast_db_put``: ``INSERT OR REPLACE``."""
        self._rows[self.full_key(family, key)] = value

    def get(self, family: str, key: str) -> str | None:
        """``ast_db_get``: the value, None if there is no such row."""
        return self._rows.get(self.full_key(family, key))

    def delete(self, family: str, key: str) -> bool:
        """``ast_db_del2``: False when the row does not exist."""
        return self._rows.pop(self.full_key(family, key), None) is not None

    def items(self) -> list[tuple[str, str]]:
        """Every (full key, value), ``ORDER BY key`` as ``database show`` lists them."""
        return sorted(self._rows.items())

    def clear(self) -> None:
        """Empty the table (``database deltree`` of everything)."""
        self._rows.clear()

    def __len__(self) -> int:
        return len(self._rows)

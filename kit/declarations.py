"""What a product declares about an account's data: its tables in purge order, how each is
purged, which rows are live resources that block deletion (and a custom purge for what no
table declaration fits). The built-in `sql` products (`registry.products`) and a product
team's own worker (`kit.worker`) are declared the same way and purged by the same engine
(`kit.engine`).

SQL text is composed here, and only here, from constant declarations (identifiers are checked
against a strict pattern when declared); every value is a bind parameter.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

import asyncpg

from contract.names import PRODUCT_NAME_PATTERN

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
"""A connection of its own or one borrowed from a pool: both run the same queries."""


def identifier(name: str) -> str:
    """`name` if it is a plain lower-case SQL identifier; refused otherwise (ValueError)."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


class PurgeMethod(StrEnum):
    DELETE = "delete"
    ANONYMISE = "anonymise"
    """Keep the record (the law requires it) but clear what identifies the person."""


PROGRESS_UPSERT = (
    "insert into purge_progress (account_id, product, table_name, method, rows, batches)"
    " select $1, $3::text, $4::text, $5::text, n, 1 from tally where n > 0"
    " on conflict (account_id, product, table_name) do update"
    " set rows = purge_progress.rows + excluded.rows,"
    " batches = purge_progress.batches + 1, updated_at = now()"
)
"""Adds a batch's count `n` (from `tally`) to the account's progress row of product $3, table
$4, method $5: run in the statement (so the transaction) that purged the batch."""


@dataclass(frozen=True)
class LiveResource:
    """Rows of `table` in one of `live_states` are resources in use: they block deletion."""

    table: str
    noun: str
    """How a user calls one: `compute instance`."""
    label_sql: str
    """An SQL expression over the row naming it, e.g. `name || ' (' || region || ')'`."""
    live_states: tuple[str, ...]
    resolution: str

    @property
    def find_sql(self) -> str:
        """Rows of account $1 in a state of $2: `label` and `state`, in label order."""
        table = identifier(self.table)
        return (
            f"select {self.label_sql} as label, state from {table} "
            "where account_id = $1 and state = any($2::text[]) order by 1"
        )


@dataclass(frozen=True)
class TablePurge:
    table: str
    key: str
    """A column unique among the account's rows: batches are taken in its order."""
    method: PurgeMethod = PurgeMethod.DELETE
    cleared: tuple[str, ...] = ()
    """For ANONYMISE: the columns set to null. The table must have `anonymised_at`."""

    def __post_init__(self) -> None:
        identifier(self.table)
        identifier(self.key)
        for column in self.cleared:
            identifier(column)
        if (self.method is PurgeMethod.ANONYMISE) != bool(self.cleared):
            raise ValueError(f"{self.table}: anonymise needs the columns it clears, delete none")

    @property
    def _remaining(self) -> str:
        if self.method is PurgeMethod.DELETE:
            return "account_id = $1"
        return "account_id = $1 and anonymised_at is null"

    def bound_sql(self, *, after_last: bool) -> str:
        """The key of the $2-th row of account $1 still to purge, in key order (of fewer, the
        last; none: null); with `after_last`, counting from the rows with a key above $3."""
        rows = f"{self._remaining} and {self.key} > $3" if after_last else self._remaining
        return (
            f"select {self.key} from (select {self.key} from {self.table} "
            f"where {rows} order by {self.key} limit $2) chosen order by {self.key} desc limit 1"
        )

    def range_sql(self, *, after_last: bool) -> str:
        """Purges account $1's rows with a key up to $2 (with `after_last`, above $6) and adds
        their count to the account's `purge_progress` row of product $3, table $4, method $5,
        in one statement (one transaction: counted if and only if purged). Returns the count.

        The bound is a parameter, found by `bound_sql` just before, not a subquery of this
        statement: the planner then sees the range and takes the `(account_id, key)` index. With
        the bound computed in the same statement it could not, and for some tables took the
        primary key's range and walked the other accounts' rows in it (0.2-0.3 s for a batch of
        5,000 rows where 5 ms is usual: the longest transaction of the purge benchmark)."""
        # Keyset batches: a batch is the range of keys from where the last one ended up to the
        # bound, purged with one range scan of the (account_id, key) index. It never walks the
        # entries of rows already purged (dead until vacuumed), so the thousandth batch costs
        # what the first did.
        rows = f"{self._remaining} and {self.key} > $6" if after_last else self._remaining
        in_range = f"where {rows} and {self.key} <= $2"
        if self.method is PurgeMethod.DELETE:
            change = f"delete from {self.table} {in_range}"
        else:
            cleared = ", ".join(f"{column} = null" for column in self.cleared)
            change = f"update {self.table} set {cleared}, anonymised_at = now() {in_range}"
        # A data-modifying CTE runs to completion whether or not the query reads it.
        return (
            f"with purged as ({change} returning 1), "
            f"tally as (select count(*) as n from purged), counted as ({PROGRESS_UPSERT}) "
            "select n from tally"
        )

    @property
    def probe_sql(self) -> str:
        """Counts what of account $1 is still here that the purge should have removed."""
        if self.method is PurgeMethod.DELETE:
            return f"select count(*) from {self.table} where account_id = $1"
        still_set = " or ".join(f"{column} is not null" for column in self.cleared)
        return (
            f"select count(*) from {self.table} "
            f"where account_id = $1 and (anonymised_at is null or {still_set})"
        )


CustomBatch = Callable[[Connection, str, int], Awaitable[int]]
"""`(conn, account_id, limit)`: removes up to `limit` of the account's rows in the transaction
`conn` is in; returns how many it removed."""
CustomRemaining = Callable[[Connection, str], Awaitable[int]]
"""`(conn, account_id)`: read-only, how many of the account's rows are still there."""


@dataclass(frozen=True)
class CustomPurge:
    """A purge step no table declaration fits (a table without a unique key, rows spread over
    several tables, a computed clean-up). The engine gives it the same guarantees: it calls
    `batch` in a transaction that also adds the count it returns to `purge_progress` (counted
    if and only if committed), heartbeats between batches, calls it again until it removes
    fewer than the batch size, and probes with `remaining` afterwards. Only what `batch` does
    in that database is atomic with its count: anything it does elsewhere must be idempotent.
    """

    table: str
    """The name its rows are counted and receipted under."""
    batch: CustomBatch = field(compare=False)
    remaining: CustomRemaining = field(compare=False)
    method: PurgeMethod = PurgeMethod.DELETE

    def __post_init__(self) -> None:
        identifier(self.table)


PurgeStep = TablePurge | CustomPurge


@dataclass(frozen=True)
class KitProduct:
    """One product: its tables (in purge order: children before the rows they reference), the
    live resources that block an account's deletion, custom purge steps for what no table
    declaration fits (run first, in order, before the tables), and which tables may be purged
    at the same time."""

    name: str
    title: str
    tables: tuple[TablePurge, ...]
    live: tuple[LiveResource, ...] = field(default=())
    custom: tuple[CustomPurge, ...] = field(default=())
    together: tuple[tuple[str, ...], ...] = field(default=())
    """Groups of tables purged at the same time, each on its own connection: tables next to
    each other in `tables` with no foreign key between them (nor any other reason to purge
    one first). Every other table is purged alone, in order."""

    def __post_init__(self) -> None:
        if not re.fullmatch(PRODUCT_NAME_PATTERN, self.name):
            raise ValueError(f"not a product name: {self.name!r} (lowercase letters, digits, _)")
        names = [step.table for step in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: a table is declared twice")
        tables = [table.table for table in self.tables]
        grouped = [name for group in self.together for name in group]
        if len(set(grouped)) != len(grouped):
            raise ValueError(f"{self.name}: a table is in two groups of `together`")
        for group in self.together:
            if len(group) < 2 or not set(group) <= set(tables):
                raise ValueError(f"{self.name}: `together` groups two or more of its tables")
            first = tables.index(group[0])
            if tuple(tables[first : first + len(group)]) != group:
                raise ValueError(f"{self.name}: {group} are not next to each other in `tables`")

    @property
    def stages(self) -> tuple[tuple[int, ...], ...]:
        """The purge's order as indices of `steps`: each stage's steps run at the same time,
        a stage after the one before has finished."""
        together = {group[0]: len(group) for group in self.together}
        stages: list[tuple[int, ...]] = [(index,) for index in range(len(self.custom))]
        index = len(self.custom)
        while index < len(self.steps):
            size = together.get(self.steps[index].table, 1)
            stages.append(tuple(range(index, index + size)))
            index += size
        return tuple(stages)

    def stage_start(self, index: int) -> int:
        """The first step of the stage that step `index` is in (a stage is resumed whole)."""
        return next((stage[0] for stage in self.stages if index in stage), index)

    @property
    def steps(self) -> tuple[PurgeStep, ...]:
        """What the purge goes through, in order: the custom steps, then the tables."""
        return self.custom + self.tables

    @property
    def probe_sql(self) -> str:
        """Every declared table's probe for account $1 in one statement (one snapshot, one
        round trip): one row, a count per table, named by the table. Custom steps probe with
        their own `remaining`."""
        return "select " + ", ".join(f"({t.probe_sql}) as {t.table}" for t in self.tables)

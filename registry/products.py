"""The product registry: every product declared once, with the tables holding an account's data.

Adding a product is adding a declaration here: the prerequisite check, the purge and the
post-purge probe are generic over these declarations. `tests/test_products.py` fails when a
table referencing an account is covered by no declaration (the under-deletion check).

SQL text is composed here, and only here, from these constant declarations (identifiers are
checked against a strict pattern at import); every value is a bind parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def _identifier(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


class PurgeMethod(StrEnum):
    DELETE = "delete"
    ANONYMISE = "anonymise"
    """Keep the record (the law requires it) but clear what identifies the person."""


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
        table = _identifier(self.table)
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
        _identifier(self.table)
        _identifier(self.key)
        for column in self.cleared:
            _identifier(column)
        if (self.method is PurgeMethod.ANONYMISE) != bool(self.cleared):
            raise ValueError(f"{self.table}: anonymise needs the columns it clears, delete none")

    @property
    def _remaining(self) -> str:
        if self.method is PurgeMethod.DELETE:
            return "account_id = $1"
        return "account_id = $1 and anonymised_at is null"

    @property
    def batch_sql(self) -> str:
        """Purges the first $2 rows of account $1 in key order and adds their count to the
        account's `purge_progress` row of product $3, table $4, method $5, in one statement
        (one transaction: counted if and only if purged). One row: `rows` and `last` (the last
        key purged, where the next batch starts)."""
        return self._batch(after_last=False)

    @property
    def next_batch_sql(self) -> str:
        """The same for the next $2 rows, those with a key above $6."""
        return self._batch(after_last=True)

    def _batch(self, *, after_last: bool) -> str:
        # Keyset batches: a batch is the range of keys from where the last one ended up to the
        # $2-th row after it, purged with one range scan of the (account_id, key) index. It
        # never walks the entries of rows already purged (dead until vacuumed), so the
        # thousandth batch costs what the first did.
        rows = f"{self._remaining} and {self.key} > $6" if after_last else self._remaining
        bound = (
            f"select {self.key} as upper from (select {self.key} from {self.table} "
            f"where {rows} order by {self.key} limit $2) chosen order by {self.key} desc limit 1"
        )
        in_range = f"where {rows} and {self.key} <= (select upper from bound)"
        if self.method is PurgeMethod.DELETE:
            change = f"delete from {self.table} {in_range}"
        else:
            cleared = ", ".join(f"{column} = null" for column in self.cleared)
            change = f"update {self.table} set {cleared}, anonymised_at = now() {in_range}"
        # A data-modifying CTE runs to completion whether or not the query reads it.
        counted = (
            "insert into purge_progress (account_id, product, table_name, method, rows, batches)"
            " select $1, $3::text, $4::text, $5::text, n, 1 from tally where n > 0"
            " on conflict (account_id, product, table_name) do update"
            " set rows = purge_progress.rows + excluded.rows,"
            " batches = purge_progress.batches + 1, updated_at = now()"
        )
        return (
            f"with bound as ({bound}), purged as ({change} returning 1), "
            f"tally as (select count(*) as n from purged), counted as ({counted}) "
            "select (select n from tally) as rows, (select upper from bound) as last"
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


@dataclass(frozen=True)
class Product:
    name: str
    title: str
    tables: tuple[TablePurge, ...]
    """In purge order: children before the rows they reference."""
    live: tuple[LiveResource, ...] = field(default=())

    @property
    def probe_sql(self) -> str:
        """Every table's probe for account $1 in one statement (one snapshot, one round trip):
        one row, a count per table, named by the table."""
        counts = ", ".join(f"({table.probe_sql}) as {table.table}" for table in self.tables)
        return f"select {counts}"


PRODUCTS: tuple[Product, ...] = (
    Product(
        name="compute",
        title="Compute",
        tables=(
            TablePurge("compute_snapshots", "snapshot_id"),
            TablePurge("compute_disks", "disk_id"),
            TablePurge("compute_instances", "instance_id"),
        ),
        live=(
            LiveResource(
                "compute_instances",
                "compute instance",
                "instance_id || ' (' || name || ', ' || region || ')'",
                ("running", "stopped"),
                "Terminate the instance in the Compute console.",
            ),
            LiveResource(
                "compute_disks",
                "disk",
                "disk_id || ' (' || size_gb || ' GB)'",
                ("attached", "available"),
                "Delete the disk (detach it first if it is attached).",
            ),
        ),
    ),
    Product(
        name="object_storage",
        title="Object Storage",
        tables=(
            TablePurge("storage_objects", "object_id"),
            TablePurge("storage_buckets", "bucket_id"),
        ),
        live=(
            LiveResource(
                "storage_buckets",
                "bucket",
                "name || ' (' || region || ')'",
                ("active",),
                "Empty and delete the bucket in the Object Storage console.",
            ),
        ),
    ),
    Product(
        name="databases",
        title="Relational Databases",
        tables=(
            TablePurge("db_backups", "backup_id"),
            TablePurge("db_instances", "db_instance_id"),
        ),
        live=(
            LiveResource(
                "db_instances",
                "database instance",
                "db_instance_id || ' (' || engine || ', ' || name || ')'",
                ("available", "stopped"),
                "Release the database instance; download any backup you want to keep first.",
            ),
        ),
    ),
    Product(
        name="networking",
        title="Networking",
        tables=(
            TablePurge("elastic_ips", "eip_id"),
            TablePurge("load_balancers", "lb_id"),
        ),
        live=(
            LiveResource(
                "elastic_ips",
                "elastic IP",
                "eip_id || ' (' || host(address) || ')'",
                ("allocated",),
                "Release the elastic IP address.",
            ),
            LiveResource(
                "load_balancers",
                "load balancer",
                "lb_id || ' (' || name || ')'",
                ("active",),
                "Delete the load balancer.",
            ),
        ),
    ),
    Product(
        name="dns",
        title="DNS",
        tables=(
            TablePurge("dns_records", "record_id"),
            TablePurge("dns_zones", "zone_id"),
        ),
        live=(
            LiveResource(
                "dns_zones",
                "DNS zone",
                "domain",
                ("active",),
                "Delete the hosted zone (move the domain to another DNS provider first).",
            ),
        ),
    ),
    Product(
        name="cdn",
        title="CDN",
        tables=(
            TablePurge("cdn_access_logs", "log_id"),
            TablePurge("cdn_domains", "cdn_domain_id"),
        ),
        live=(
            LiveResource(
                "cdn_domains",
                "CDN domain",
                "domain",
                ("online", "offline"),
                "Remove the accelerated domain from the CDN console.",
            ),
        ),
    ),
    Product(
        name="billing",
        title="Billing records",
        tables=(
            TablePurge("bills", "bill_id", PurgeMethod.ANONYMISE, cleared=("billed_to",)),
            TablePurge("contracts", "contract_id"),
            TablePurge("account_balances", "account_id"),
        ),
    ),
    Product(
        name="organizations",
        title="Groups and partnerships",
        tables=(
            TablePurge("group_memberships", "group_id"),
            TablePurge("partner_relationships", "relationship_id"),
        ),
    ),
    Product(
        name="sign_in",
        title="Sign-in: sessions, API keys, verification challenges",
        tables=(
            TablePurge("sessions", "session_id"),
            TablePurge("api_keys", "key_id"),
            TablePurge("verification_attempts", "attempt_id"),
            TablePurge("verification_challenges", "challenge_id"),
        ),
    ),
)

PRODUCTS_BY_NAME = {product.name: product for product in PRODUCTS}

RETAINED_TABLES: dict[str, str] = {
    "accounts": "the account row stays as a tombstone (status deleted); finalize clears its PII",
    "identifier_claims": "released after every purge; release clears the claimed values",
    "deletions": "the deletion's own record and receipt",
    "audit_events": "append-only audit trail; holds ids and counts, never PII",
    "legal_holds": "a legal record about the account, kept by law",
    "notification_outbox": (
        "delivery log; recipient and body are cleared once delivered, after a day undelivered,"
        " and when the account is deleted (the confirmation then keeps them until delivered)"
    ),
    "verification_code_issues": (
        "codes sent per account and keyed hash of the recipient: the 24-hour limit across runs"
        " and accounts (no PII; rows leave with the window)"
    ),
    "purge_progress": "the purge's own bookkeeping, the source of the receipt's counts",
    "product_purges": "the purge's own bookkeeping: which products finished, and when",
    "deletion_events": (
        "stage changes (ids, stages, a count; no PII): the console's event outbox and the list's"
        " history; the worker's event relay deletes them a week after delivery once superseded"
    ),
}
"""Tables that reference an account but are not purged, each with the reason."""

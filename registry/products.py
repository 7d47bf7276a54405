"""The product registry: every product declared once, with the tables holding an account's data.

Adding a product is adding a declaration here: the prerequisite check, the purge and the
post-purge probe are generic over these declarations. `tests/test_products.py` fails when a
table referencing an account is covered by no declaration (the under-deletion check).
Tables of a product with no foreign key between them may be declared `together` (purged at
the same time); it checks too that no foreign key joins two tables of a group.

The declarations (`TablePurge`, `LiveResource`, `PurgeMethod`) are the product kit's
(`kit.declarations`), which composes their SQL from checked identifiers; every value is a
bind parameter.
"""

from __future__ import annotations

from kit.declarations import KitProduct, LiveResource, PurgeMethod, TablePurge

__all__ = [
    "PRODUCTS",
    "PRODUCTS_BY_NAME",
    "RETAINED_TABLES",
    "LiveResource",
    "Product",
    "PurgeMethod",
    "TablePurge",
]

Product = KitProduct
"""A built-in product is declared as a product team declares theirs (`kit`): its tables are
in this service's database, purged by the same engine."""


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
        together=(("elastic_ips", "load_balancers"),),
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
        together=(("bills", "contracts", "account_balances"),),
    ),
    Product(
        name="organizations",
        title="Groups and partnerships",
        tables=(
            TablePurge("group_memberships", "group_id"),
            TablePurge("partner_relationships", "relationship_id"),
        ),
        together=(("group_memberships", "partner_relationships"),),
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
        # Attempts reference their challenge: purged first, with the sessions and keys.
        together=(("sessions", "api_keys", "verification_attempts"),),
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
    "http_product_requests": (
        "the http driver's bookkeeping: what each http product reported (status, rows); its"
        " sealed task token is cleared once a result is recorded"
    ),
    "deletion_events": (
        "stage changes (ids, stages, a count; no PII): the console's event outbox and the list's"
        " history; the worker's event relay deletes them a week after delivery once superseded"
    ),
}
"""Tables that reference an account but are not purged, each with the reason."""

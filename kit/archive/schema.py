"""The archive team's own schema, in its own database: vaults, the objects archived in them,
retrieval jobs, and the vault access log. Rows carry `account_id` as the deletion service
names accounts, with no foreign key to it (another team's database). Idempotent: applied at
every worker start."""

from __future__ import annotations

SCHEMA = (
    """
    create table if not exists archive_vaults (
        vault_id    text primary key,
        account_id  text not null,
        name        text not null,
        region      text not null,
        state       text not null
                    check (state in ('active', 'locked', 'deleting', 'deleted')),
        created_at  timestamptz not null default now(),
        unique (account_id, vault_id)
    )
    """,
    """
    create table if not exists archive_objects (
        object_id    bigint generated always as identity primary key,
        account_id   text not null,
        vault_id     text not null references archive_vaults (vault_id),
        object_key   text not null,
        size_bytes   bigint not null check (size_bytes >= 0),
        archived_at  timestamptz not null default now()
    )
    """,
    "create index if not exists archive_objects_account on archive_objects (account_id, object_id)",
    """
    create table if not exists archive_retrieval_jobs (
        job_id        text primary key,
        account_id    text not null,
        vault_id      text not null references archive_vaults (vault_id),
        object_key    text not null,
        state         text not null
                      check (state in ('in_progress', 'succeeded', 'failed', 'expired')),
        requested_at  timestamptz not null default now(),
        unique (account_id, job_id)
    )
    """,
    # An append-only log without a key of its own: purged by a custom step (kit.CustomPurge).
    """
    create table if not exists archive_access_log (
        account_id  text not null,
        vault_id    text not null references archive_vaults (vault_id),
        action      text not null,
        at          timestamptz not null default now()
    )
    """,
    "create index if not exists archive_access_log_account on archive_access_log (account_id)",
)
"""Statements for `kit.ensure_schema`, in order."""

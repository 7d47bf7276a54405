-- Exactly-once purges: each batch commits together with its count, so after any crash the
-- counts are exact and a retried purge resumes where the committed work stopped.

create table purge_progress (
    account_id   text not null references accounts (account_id),
    product      text not null,
    table_name   text not null,
    method       text not null check (method in ('delete', 'anonymise')),
    rows         bigint not null default 0,
    batches      integer not null default 0,
    started_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now(),
    primary key (account_id, product, table_name)
);

-- One row per product once its purge finished and the probe found nothing left.
-- Identifiers are released only when every product of the registry has one.
create table product_purges (
    account_id     text not null references accounts (account_id),
    product        text not null,
    workflow_id    text not null,
    completed_at   timestamptz not null default now(),
    verified_clean boolean not null,
    primary key (account_id, product)
);

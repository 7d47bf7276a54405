-- Per-product data. Every table carries account_id so that a product's data for one account
-- can be found (prerequisite check), removed in batches (purge) and probed (proof of purge).
-- Rows in a live state are resources the customer still uses: they block deletion.
-- Everything else is residual data that the purge removes.

-- compute
create table compute_instances (
    instance_id  text primary key,
    account_id   text not null references accounts (account_id),
    region       text not null,
    name         text not null,
    machine_type text not null,
    state        text not null check (state in ('running', 'stopped', 'terminated')),
    created_at   timestamptz not null default now()
);
create index compute_instances_account on compute_instances (account_id);

create table compute_disks (
    disk_id      text primary key,
    account_id   text not null references accounts (account_id),
    instance_id  text references compute_instances (instance_id),
    size_gb      integer not null check (size_gb > 0),
    state        text not null check (state in ('attached', 'available', 'deleted')),
    created_at   timestamptz not null default now()
);
create index compute_disks_account on compute_disks (account_id);
create index compute_disks_instance on compute_disks (instance_id);

create table compute_snapshots (
    snapshot_id  bigint generated always as identity primary key,
    account_id   text not null references accounts (account_id),
    disk_id      text references compute_disks (disk_id),
    size_gb      integer not null,
    created_at   timestamptz not null default now()
);
create index compute_snapshots_account on compute_snapshots (account_id, snapshot_id);
create index compute_snapshots_disk on compute_snapshots (disk_id);

-- object storage
create table storage_buckets (
    bucket_id    text primary key,
    account_id   text not null references accounts (account_id),
    name         text not null,
    region       text not null,
    state        text not null check (state in ('active', 'deleted')),
    created_at   timestamptz not null default now()
);
create index storage_buckets_account on storage_buckets (account_id);

create table storage_objects (
    object_id    bigint generated always as identity primary key,
    account_id   text not null references accounts (account_id),
    bucket_id    text not null references storage_buckets (bucket_id),
    object_key   text not null,
    size_bytes   bigint not null check (size_bytes >= 0),
    created_at   timestamptz not null default now()
);
create index storage_objects_account on storage_objects (account_id, object_id);
create index storage_objects_bucket on storage_objects (bucket_id);

-- relational databases
create table db_instances (
    db_instance_id text primary key,
    account_id     text not null references accounts (account_id),
    engine         text not null,
    name           text not null,
    state          text not null check (state in ('available', 'stopped', 'deleted')),
    created_at     timestamptz not null default now()
);
create index db_instances_account on db_instances (account_id);

create table db_backups (
    backup_id      bigint generated always as identity primary key,
    account_id     text not null references accounts (account_id),
    db_instance_id text references db_instances (db_instance_id),
    size_bytes     bigint not null,
    created_at     timestamptz not null default now()
);
create index db_backups_account on db_backups (account_id, backup_id);
create index db_backups_instance on db_backups (db_instance_id);

-- networking
create table elastic_ips (
    eip_id       text primary key,
    account_id   text not null references accounts (account_id),
    address      inet not null,
    state        text not null check (state in ('allocated', 'released')),
    created_at   timestamptz not null default now()
);
create index elastic_ips_account on elastic_ips (account_id);

create table load_balancers (
    lb_id        text primary key,
    account_id   text not null references accounts (account_id),
    name         text not null,
    state        text not null check (state in ('active', 'deleted')),
    created_at   timestamptz not null default now()
);
create index load_balancers_account on load_balancers (account_id);

-- DNS
create table dns_zones (
    zone_id      text primary key,
    account_id   text not null references accounts (account_id),
    domain       text not null,
    state        text not null check (state in ('active', 'deleted')),
    created_at   timestamptz not null default now()
);
create index dns_zones_account on dns_zones (account_id);

create table dns_records (
    record_id    bigint generated always as identity primary key,
    account_id   text not null references accounts (account_id),
    zone_id      text not null references dns_zones (zone_id),
    name         text not null,
    record_type  text not null,
    value        text not null,
    ttl          integer not null default 300
);
create index dns_records_account on dns_records (account_id, record_id);
create index dns_records_zone on dns_records (zone_id);

-- CDN
create table cdn_domains (
    cdn_domain_id text primary key,
    account_id    text not null references accounts (account_id),
    domain        text not null,
    origin        text not null,
    state         text not null check (state in ('online', 'offline', 'deleted')),
    created_at    timestamptz not null default now()
);
create index cdn_domains_account on cdn_domains (account_id);

create table cdn_access_logs (
    log_id        bigint generated always as identity primary key,
    account_id    text not null references accounts (account_id),
    cdn_domain_id text not null references cdn_domains (cdn_domain_id),
    requested_at  timestamptz not null,
    path          text not null,
    bytes_sent    bigint not null
);
create index cdn_access_logs_account on cdn_access_logs (account_id, log_id);
create index cdn_access_logs_domain on cdn_access_logs (cdn_domain_id);

-- A product's own refusal to purge an account (a legal hold, a litigation freeze).
-- The purge of that product fails permanently while an active hold exists.
create table legal_holds (
    hold_id      bigint generated always as identity primary key,
    account_id   text not null references accounts (account_id),
    product      text not null,
    reason       text not null,
    placed_at    timestamptz not null default now(),
    lifted_at    timestamptz
);
create index legal_holds_account on legal_holds (account_id);

-- Accounts, their sign-in surface, and the identifier claims that make
-- "can be registered again after deletion" true.

create table accounts (
    account_id      text primary key
                    check (account_id ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'),
    status          text not null default 'active'
                    check (status in ('active', 'frozen', 'deleted')),
    user_name       text,              -- normalised; cleared when the account is deleted
    email           text,              -- normalised; cleared when the account is deleted
    phone           text,              -- E.164; cleared when the account is deleted
    display_name    text,
    created_at      timestamptz not null default now(),
    frozen_at       timestamptz,
    deleted_at      timestamptz,
    check ((status = 'deleted') = (deleted_at is not null))
);

-- A claim holds one identifier for one account until it is released, which happens only
-- once the account is fully deleted. Released claims stay as history, without the value.
create table identifier_claims (
    claim_id         bigint generated always as identity primary key,
    account_id       text not null references accounts (account_id),
    kind             text not null check (kind in ('user_name', 'email', 'phone')),
    normalized_value text,             -- null once released: the value is not kept after deletion
    claimed_at       timestamptz not null default now(),
    released_at      timestamptz,
    check ((released_at is null) = (normalized_value is not null))
);
create unique index identifier_claims_held
    on identifier_claims (kind, normalized_value) where released_at is null;
create index identifier_claims_account on identifier_claims (account_id);

create table sessions (
    session_id   uuid primary key,
    account_id   text not null references accounts (account_id),
    user_agent   text,
    created_at   timestamptz not null default now(),
    expires_at   timestamptz not null,
    revoked_at   timestamptz
);
create index sessions_account on sessions (account_id);

create table api_keys (
    key_id       text primary key,
    account_id   text not null references accounts (account_id),
    description  text,
    secret_hash  bytea not null,
    created_at   timestamptz not null default now(),
    revoked_at   timestamptz
);
create index api_keys_account on api_keys (account_id);

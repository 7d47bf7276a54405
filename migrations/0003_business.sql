-- Business attached to an account: money, contracts, groups, and relationships with other parties.

create table account_balances (
    account_id    text primary key references accounts (account_id),
    funds_cents   bigint not null default 0 check (funds_cents >= 0),
    currency      text not null default 'USD',
    updated_at    timestamptz not null default now()
);

-- Bills are kept after deletion (tax law): the purge anonymises them instead of deleting.
create table bills (
    bill_id       text primary key,
    account_id    text not null references accounts (account_id),
    period        text not null,           -- e.g. 2026-10
    amount_cents  bigint not null check (amount_cents >= 0),
    currency      text not null default 'USD',
    status        text not null check (status in ('paid', 'unpaid')),
    billed_to     text,                    -- the customer's name on the bill; null once anonymised
    anonymised_at timestamptz,
    issued_at     timestamptz not null default now()
);
create index bills_account on bills (account_id);

create table contracts (
    contract_id   text primary key,
    account_id    text not null references accounts (account_id),
    title         text not null,
    status        text not null check (status in ('active', 'fulfilled', 'terminated')),
    ends_on       date
);
create index contracts_account on contracts (account_id);

create table account_groups (
    group_id         text primary key,
    name             text not null,
    created_at       timestamptz not null default now()
);

create table group_memberships (
    group_id     text not null references account_groups (group_id),
    account_id   text not null references accounts (account_id),
    role         text not null check (role in ('owner', 'member')),
    joined_at    timestamptz not null default now(),
    primary key (group_id, account_id)
);
create index group_memberships_account on group_memberships (account_id);

-- Agencies (agents and resellers acting for the account) and other partnerships.
create table partner_relationships (
    relationship_id text primary key,
    account_id      text not null references accounts (account_id),
    kind            text not null check (kind in ('agent', 'reseller', 'partner')),
    counterparty    text not null,          -- the other party's business name
    status          text not null check (status in ('active', 'ended')),
    started_at      timestamptz not null default now(),
    ended_at        timestamptz
);
create index partner_relationships_account on partner_relationships (account_id);

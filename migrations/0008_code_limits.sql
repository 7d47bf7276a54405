-- Verification codes per account and per recipient across deletion runs: at most 10 of each
-- in 24 hours, so that starting and cancelling deletions cannot flood someone's inbox.
-- The recipient is kept only as a keyed hash: SHA-256 over this database's random key and the
-- normalised address, enough to count codes to one address across accounts, never the address.

create table code_limit_key (
    singleton boolean primary key default true check (singleton),
    key       bytea not null
              default (uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()))
);
insert into code_limit_key default values;

-- One row per code issued (a retry of the same challenge is the same code).
create table verification_code_issues (
    challenge_id   uuid primary key,
    account_id     text not null references accounts (account_id),
    recipient_hash bytea not null,
    issued_at      timestamptz not null default now()
);
create index verification_code_issues_account on verification_code_issues (account_id, issued_at);
create index verification_code_issues_recipient
    on verification_code_issues (recipient_hash, issued_at);

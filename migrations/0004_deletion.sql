-- The deletion itself: one row per deletion run kept in step with the workflow, an append-only
-- audit trail, verification challenges (hashes only) and the notification outbox.

create table deletions (
    workflow_id     text primary key,
    account_id      text not null references accounts (account_id),
    run_id          text,
    stage           text not null,
    requested_by    text not null,
    requested_at    timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    closed_at       timestamptz,
    pending_tasks   jsonb not null default '[]',
    products        jsonb not null default '{}',
    identifiers_released_at timestamptz,
    receipt         jsonb
);
create index deletions_account on deletions (account_id);
create index deletions_stage on deletions (stage) where closed_at is null;

create table audit_events (
    event_id     bigint generated always as identity primary key,
    account_id   text not null,
    workflow_id  text,
    kind         text not null,
    detail       jsonb not null default '{}',   -- never PII: ids, counts, products, stages
    occurred_at  timestamptz not null default now()
);
create index audit_events_account on audit_events (account_id, event_id);

create function audit_events_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'audit_events is append-only';
end;
$$;
create trigger audit_events_no_update before update or delete on audit_events
    for each row execute function audit_events_append_only();
create trigger audit_events_no_truncate before truncate on audit_events
    for each statement execute function audit_events_append_only();

create table verification_challenges (
    challenge_id   uuid primary key,
    account_id     text not null references accounts (account_id),
    workflow_id    text not null,
    channel        text not null check (channel in ('email', 'sms')),
    salt           bytea not null,
    code_hash      bytea not null,
    issued_at      timestamptz not null default now(),
    expires_at     timestamptz not null,
    attempts_left  integer not null check (attempts_left >= 0),
    consumed_at    timestamptz,
    invalidated_at timestamptz
);
create index verification_challenges_workflow on verification_challenges (workflow_id);

-- Each submitted code is checked once: a retried check returns the recorded outcome
-- instead of counting the same wrong attempt twice. The code itself is never stored.
create table verification_attempts (
    attempt_id     uuid primary key,
    account_id     text not null references accounts (account_id),
    challenge_id   uuid not null references verification_challenges (challenge_id),
    outcome        text not null check (outcome in ('accepted', 'wrong', 'expired', 'locked')),
    attempts_left  integer not null,
    checked_at     timestamptz not null default now()
);
create index verification_attempts_account on verification_attempts (account_id);

-- Every message sent to a customer. Recipient and body are kept only until delivery; a
-- verification code is never written here (it is delivered straight from memory).
create table notification_outbox (
    notification_id  uuid primary key,
    idempotency_key  text not null unique,
    account_id       text not null references accounts (account_id),
    channel          text not null check (channel in ('email', 'sms')),
    recipient        text,
    template         text not null,
    body             text,
    created_at       timestamptz not null default now(),
    delivered_at     timestamptz,
    attempts         integer not null default 0,
    last_error       text
);
create index notification_outbox_undelivered on notification_outbox (created_at)
    where delivered_at is null;

-- The answers of POST requests sent with an `Idempotency-Key` header: a repeat of the request
-- (the same key, route and account) gets the stored answer instead of acting again, and the
-- same key with another body is refused. `fingerprint` is an HMAC of the request body under a
-- server key, never the body (it may hold an email or phone). `status_code` is null while the
-- first request is being handled. Rows older than a day are replaced on the next use of their
-- key and may be deleted at any time.

create table idempotency_keys (
    key          text        not null,
    route        text        not null,
    scope        text        not null,
    fingerprint  text        not null,
    status_code  integer,
    response     jsonb,
    created_at   timestamptz not null default now(),
    primary key (key, route, scope)
);
create index idempotency_keys_created_at on idempotency_keys (created_at);

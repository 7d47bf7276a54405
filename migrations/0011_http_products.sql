-- The `http` driver: one row per deletion and `http` product, written before the signed
-- request is sent, holding the purge activity's task token sealed under PAYLOAD_KEYS (never in
-- clear) until a result arrives. The callback endpoint (API) and the poller (worker) record the
-- product's result here, whichever learns it first; the first result recorded stands.
-- Retention: the sealed token is cleared the moment a result is recorded; the row then holds
-- ids, a status and a count (no PII) and is kept with the deletion's other bookkeeping
-- (registry.products RETAINED_TABLES), like product_purges.
create table http_product_requests (
    workflow_id   text not null,
    product       text not null,
    account_id    text not null,
    task_token    bytea,
    status        text not null default 'pending'
                  check (status in ('pending', 'completed', 'failed')),
    rows          bigint check (rows >= 0),
    reason        text,
    requested_at  timestamptz not null default now(),
    result_at     timestamptz,
    primary key (workflow_id, product),
    check ((status = 'pending') = (result_at is null))
);
create index http_product_requests_account on http_product_requests (account_id);

-- The `webhook-id` of every callback accepted, so that a replayed callback is refused. A
-- callback's signed timestamp must be within five minutes of the receiver's clock, so an id
-- need not be remembered much longer: the callback endpoint deletes ids older than an hour each
-- time it records one. No account data: a product and the product's message id.
create table http_product_callbacks (
    product      text not null,
    webhook_id   text not null,
    received_at  timestamptz not null default now(),
    primary key (product, webhook_id)
);
create index http_product_callbacks_received on http_product_callbacks (received_at);

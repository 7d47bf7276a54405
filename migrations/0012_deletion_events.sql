-- Stage changes as an ordered log: the outbox of the `deletion.stage_changed` events for the
-- console backend (delivered by the worker's relay when EVENTS_WEBHOOK_URL is set), and the
-- history that lets `GET /v1/deletions` page over a fixed snapshot of the list.
--
-- `seq` is taken from the one-row counter `deletion_event_counter` inside the transaction that
-- records the stage, whose row lock is held until that transaction commits: seqs are therefore
-- handed out in commit order, and a committed counter value N means every change up to N is
-- committed and visible (the list's snapshot bound). Each event is written in the transaction
-- that records its stage, so an event exists if and only if the stage was recorded.

create table deletion_event_counter (
    only_row  boolean primary key default true check (only_row),
    last_seq  bigint not null
);

create table deletion_events (
    seq             bigint primary key,
    event_id        uuid not null unique,          -- the `webhook-id`, the same on every retry
    workflow_id     text not null,
    account_id      text not null,
    stage           text not null,
    previous_stage  text,
    pending_tasks   integer not null check (pending_tasks >= 0),
    deadline        timestamptz,
    closed          boolean not null,
    at              timestamptz not null default now(),
    delivered_at    timestamptz,
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    lease_until     timestamptz,
    last_error      text
);
create index deletion_events_workflow on deletion_events (workflow_id, seq);
create index deletion_events_undelivered on deletion_events (workflow_id, seq)
    where delivered_at is null;

-- Each deletion's latest change: its place in the list (most recently changed first).
alter table deletions add column change_seq bigint, add column stage_changed_at timestamptz;

-- Deletions recorded before this migration get a place in the order they last changed, and
-- one logged change each, marked delivered: no event is sent for what happened before.
with ordered as (
    select workflow_id, row_number() over (order by updated_at, workflow_id) as seq
    from deletions
)
update deletions d set change_seq = o.seq, stage_changed_at = d.updated_at
from ordered o where o.workflow_id = d.workflow_id;

insert into deletion_events (seq, event_id, workflow_id, account_id, stage, pending_tasks,
    deadline, closed, at, delivered_at)
select change_seq, gen_random_uuid(), workflow_id, account_id, stage,
    jsonb_array_length(pending_tasks), deadline, closed_at is not null, updated_at, now()
from deletions;

insert into deletion_event_counter (last_seq)
select coalesce(max(change_seq), 0) from deletions;

alter table deletions alter column change_seq set not null,
    alter column stage_changed_at set not null;
create unique index deletions_change_seq on deletions (change_seq);

-- Rows written by other means than the product's own writers (which log each change and
-- pass its place): a place at the end of the order, in the stage since the row's last update.
create function deletions_place_new_row() returns trigger language plpgsql as $$
begin
    if new.change_seq is null then
        update deletion_event_counter set last_seq = last_seq + 1
            returning last_seq into new.change_seq;
    end if;
    new.stage_changed_at := coalesce(new.stage_changed_at, new.updated_at, now());
    return new;
end;
$$;
create trigger deletions_place_new_row before insert on deletions
    for each row execute function deletions_place_new_row();

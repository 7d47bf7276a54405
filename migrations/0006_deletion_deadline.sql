-- When the deletion's current wait (pending tasks, verification) ends the run as EXPIRED,
-- recorded with each stage change. An open deletion whose wait has passed its deadline is
-- overdue: the run should have ended, so no worker is moving it (`account-deletion list
-- --overdue`). Rows recorded before this column existed keep null until their next stage change.

alter table deletions add column deadline timestamptz;
create index deletions_open_deadline on deletions (deadline) where closed_at is null;

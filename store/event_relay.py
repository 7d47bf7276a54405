"""Delivers the logged stage changes (`deletion_events`) to the console backend's
EVENTS_WEBHOOK_URL as `deletion.stage_changed` events, signed the Standard Webhooks way.

At least once, in order per deletion: only the oldest undelivered event of each deletion (its
*head*) is ever sent, so event n+1 of a deletion leaves only once event n was answered 2xx.
Deletions do not wait for one another: the heads of many are sent at once. A failed attempt
(no answer, a timeout, any non-2xx) is tried again after a backoff that doubles from one second
up to `max_backoff` (5 minutes), for as long as it takes: a receiver down for an hour or a day
loses nothing, and gets the backlog in order once it answers again. `webhook-id` is the event's
id, the same on every attempt; the timestamp and signature are made per attempt.

Any number of relays (one per worker process) may run against one database: a head is leased
(`lease_until`) by the relay that sends it, claimed with `for update skip locked`, so two relays
never send the same head at once; a relay that dies mid-attempt leaves a lease that expires.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import timedelta

import asyncpg
import httpx

from contract.events import StageChanged
from contract.stages import Stage
from core.webhooks import signature_headers, webhook_signer

logger = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
"""How long a relay owns a head it is sending; longer than any attempt (`REQUEST_TIMEOUT`)."""
REQUEST_TIMEOUT = 10.0
DELIVERED_KEPT = timedelta(days=7)
"""Delivered events are deleted this long after delivery, once a later change of the same
deletion is older than `SUPERSEDED_KEPT` (the list's snapshots read the change before it)."""
SUPERSEDED_KEPT = timedelta(days=1)
PRUNE_INTERVAL = 600.0
"""Seconds between two prunings by one relay (when it has nothing to send)."""

_CLAIM = """
with heads as (
    select distinct on (workflow_id) seq
    from deletion_events where delivered_at is null
    order by workflow_id, seq
), due as (
    -- The conditions are on `e`, which `for update` checks again on the row's latest version.
    select e.seq from deletion_events e join heads h using (seq)
    where e.delivered_at is null and e.next_attempt_at <= now()
      and (e.lease_until is null or e.lease_until < now())
    order by e.seq limit $1
    for update of e skip locked
)
update deletion_events e set lease_until = now() + $2::interval
from due where e.seq = due.seq and e.delivered_at is null
returning e.seq, e.event_id, e.workflow_id, e.account_id, e.stage, e.previous_stage,
    e.pending_tasks, e.at, e.attempts
"""


def event_of(row: asyncpg.Record) -> StageChanged:
    """The event's body, the same on every attempt (it is made from the logged row alone)."""
    return StageChanged(
        account_id=row["account_id"],
        workflow_id=row["workflow_id"],
        stage=Stage(row["stage"]),
        previous_stage=Stage(row["previous_stage"]) if row["previous_stage"] else None,
        pending_tasks=row["pending_tasks"],
        at=row["at"],
        sequence=row["seq"],
    )


def backoff(attempts: int, max_backoff: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones: 1, 2, 4, ... up to
    `max_backoff`, each with up to a fifth less at random so that relays do not beat in step."""
    delay = min(max_backoff, 2.0 ** max(attempts - 1, 0))
    return delay * (1 - random.random() / 5)


class EventRelay:
    """The relay of one process; `run` until its stop event is set."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        url: str,
        secret: str,
        *,
        client: httpx.AsyncClient | None = None,
        poll_interval: float = 1.0,
        max_backoff: float = 300.0,
        batch: int = 50,
    ) -> None:
        self._pool = pool
        self._url = url
        self._signer = webhook_signer(secret, "EVENTS_WEBHOOK_SECRET")
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(REQUEST_TIMEOUT))
        self._poll_interval = poll_interval
        self._max_backoff = max_backoff
        self._batch = batch

    async def run(self, stop: asyncio.Event) -> None:
        """Sends due heads until `stop`; a database that cannot be reached is tried again."""
        pruned_at = 0.0
        while not stop.is_set():
            try:
                sent = await self.deliver_due()
                if not sent and time.monotonic() - pruned_at > PRUNE_INTERVAL:
                    await self.prune()
                    pruned_at = time.monotonic()
            except Exception as error:  # the relay outlives a database restart, and any fault
                logger.warning("event relay: round failed (%s); trying again", type(error).__name__)
                sent = 0
            if not sent:
                try:
                    await asyncio.wait_for(stop.wait(), self._poll_interval)
                except TimeoutError:
                    pass

    async def deliver_due(self) -> int:
        """One round: claims the due heads and sends them at once; how many were attempted."""
        rows = await self._pool.fetch(_CLAIM, self._batch, LEASE)
        await asyncio.gather(*(self._attempt(row) for row in rows))
        return len(rows)

    async def _attempt(self, row: asyncpg.Record) -> None:
        body = event_of(row).model_dump_json()
        headers = {"Content-Type": "application/json"}
        headers |= signature_headers(self._signer, str(row["event_id"]), body)
        try:
            response = await self._client.post(self._url, content=body.encode(), headers=headers)
            error = None if response.is_success else f"HTTP {response.status_code}"
        except httpx.HTTPError as failure:
            error = f"unreachable ({type(failure).__name__})"
        if error is None:
            await self._pool.execute(
                """
                update deletion_events set delivered_at = now(), attempts = attempts + 1,
                    lease_until = null, last_error = null
                where seq = $1
                """,
                row["seq"],
            )
            return
        delay = backoff(row["attempts"] + 1, self._max_backoff)
        await self._pool.execute(
            """
            update deletion_events set attempts = attempts + 1, lease_until = null,
                last_error = $2, next_attempt_at = now() + $3::interval
            where seq = $1
            """,
            row["seq"],
            error,
            timedelta(seconds=delay),
        )
        logger.info("event %s not delivered (%s); next attempt in %.0f s", row["seq"], error, delay)

    async def prune(self) -> int:
        """Deletes delivered events no longer needed (see `DELIVERED_KEPT`)."""
        status: str = await self._pool.execute(
            """
            delete from deletion_events e
            where e.delivered_at < now() - $1::interval
              and exists (select 1 from deletion_events later
                          where later.workflow_id = e.workflow_id and later.seq > e.seq
                            and later.at < now() - $2::interval)
            """,
            DELIVERED_KEPT,
            SUPERSEDED_KEPT,
        )
        return int(status.rsplit(" ", 1)[-1])

    async def aclose(self) -> None:
        await self._client.aclose()

"""Fault injection: the non-negotiables hold for many deletions at once while the parts they run
on fail under them.

- a worker process SIGKILLed again and again in the middle of the purges,
- the Temporal server killed and started again on its persistent file,
- PostgreSQL stopped for half a minute during the purges.

Each test drives `DELETIONS` deletions at once through a real worker process (`python
worker.py`, webhook notifier to a real gateway; each user types the code as soon as it
arrives), then checks every deletion with `assert_deleted_exactly_once` (every product purged
exactly once in effect, identifiers released exactly once and only after the last purge) and
replays every history it made on the current workflow code.

The fault points are drawn from `random.Random(seed)`; every failure names the seed, and
`FAULTS_SEED=<seed>` draws the same points again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client, WorkflowHandle

from contract.models import DeletionReceipt, SubmitCodeInput
from contract.names import workflow_id_for
from contract.stages import Stage
from core.codec import data_converter_for_keys
from service.embedded import EmbeddedTemporal
from starter.client import DeletionClient
from store.db import create_pool
from tests.conftest import TEST_PAYLOAD_KEYS
from tests.replay import replay_every_history
from tests.support import (
    TAKEOVER_POLICY,
    Gateway,
    assert_deleted_exactly_once,
    migrated_embedded_postgres,
    new_account,
    running_gateway,
    seed_residual_rows,
    webhook_worker_env,
    worker_process,
)
from workflows.account_deletion import AccountDeletion

pytestmark = [pytest.mark.faults, pytest.mark.slow]

logger = logging.getLogger(__name__)

DELETIONS = 20
OBJECTS, RECORDS, ACCESS_LOGS = 1_500, 800, 700
"""Residual rows of each account: with batches of PURGE_BATCH_SIZE the purges take seconds,
not moments, so that faults land inside them."""
PURGE_BATCH_SIZE = 10
"""Batches of 100 went so fast that a kill meant for the middle of the purges landed after
their end (the third kill of a CI run on d94d26c)."""

FLEET_ACTIVITIES = 100
"""Activities the worker runs at once: more than the purges of all DELETIONS together."""

PURGING_OR_LATER = {Stage.PURGING, Stage.PURGE_BLOCKED, Stage.RELEASING_IDENTIFIERS, Stage.DELETED}
PAST_VERIFICATION = {Stage.FREEZING} | PURGING_OR_LATER

RECEIPTS_TIMEOUT = 180.0


# --- what the tests share --------------------------------------------------------------------


def fault_seed() -> int:
    """The seed of this run's fault points: FAULTS_SEED, or a fresh one (logged)."""
    seed = int(os.environ.get("FAULTS_SEED") or random.SystemRandom().randrange(2**32))
    logger.warning("fault points drawn with FAULTS_SEED=%d", seed)
    return seed


@contextmanager
def reproducible_with(seed: int) -> Iterator[None]:
    """Names the seed in any failure, so that the same fault points can be drawn again."""
    try:
        yield
    except (AssertionError, TimeoutError) as error:
        raise AssertionError(f"{error} [reproduce with FAULTS_SEED={seed}]") from error


async def wait_until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {timeout:.0f} s: {what}") from None


def worker_env(
    client: Client, task_queue: str, database_url: str, gateway: Gateway
) -> dict[str, str]:
    return webhook_worker_env(
        client,
        task_queue,
        database_url,
        gateway,
        batch_size=PURGE_BATCH_SIZE,
        shutdown_seconds=2,
        LOG_FORMAT="json",
        # Every deletion's activities at once: with 20 slots, the purges of the first
        # deletions took them all and the last ones waited to freeze until those were over.
        WORKER_MAX_CONCURRENT_ACTIVITIES=str(FLEET_ACTIVITIES),
        DATABASE_POOL_SIZE=str(FLEET_ACTIVITIES // 2),
    )


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (all bound at once, so they differ)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


async def seed_accounts(pool: asyncpg.Pool, count: int = DELETIONS) -> dict[str, dict[str, int]]:
    """Accounts with residual data in several products: account id -> its rows per table."""
    seeded: dict[str, dict[str, int]] = {}
    for _ in range(count):
        account_id = await new_account(pool)
        seeded[account_id] = await seed_residual_rows(
            pool, account_id, objects=OBJECTS, records=RECORDS, access_logs=ACCESS_LOGS
        )
    return seeded


@dataclass
class Fleet:
    """Deletions of many accounts at once, driven as the console backend and the users would."""

    client: Client
    pool: asyncpg.Pool
    """The test's own pool (replaced when PostgreSQL comes back)."""
    task_queue: str
    gateway: Gateway
    seeded: dict[str, dict[str, int]]
    total: int = field(init=False)
    """Rows seeded in all accounts: what the purges work through (and a few more)."""

    def __post_init__(self) -> None:
        self.total = sum(sum(rows.values()) for rows in self.seeded.values())

    @property
    def accounts(self) -> list[str]:
        return list(self.seeded)

    async def start(self) -> None:
        deletions = DeletionClient(self.client, self.pool, self.task_queue)
        for account_id in self.accounts:
            await deletions.start(account_id, requested_by="fault-test", policy=TAKEOVER_POLICY)

    async def confirm(self, timeout: float = 120) -> None:
        """Each user types the latest code that reached them until their deletion is past
        verification (a code replaced by a retried delivery is simply typed again).

        No code is typed before every user has one, so that the deletions reach their purges
        together: typed as each arrived, the first purges were over before the last began,
        and the kills meant for the middle of the purges landed at their end."""
        typed: dict[str, set[str]] = {account_id: set() for account_id in self.accounts}
        async with asyncio.timeout(timeout):
            await wait_until(self.every_code_arrived, "a code for every user", timeout)
            while waiting := [
                account_id
                for account_id, stage in (await self.stages()).items()
                if stage not in PAST_VERIFICATION
            ]:
                to_type = {
                    account_id: codes[-1]
                    for account_id in waiting
                    if (codes := self.gateway.codes_for(account_id))
                    and codes[-1] not in typed[account_id]
                }
                await asyncio.gather(
                    *(
                        self.handle(account_id).signal(
                            AccountDeletion.submit_verification_code, SubmitCodeInput(code=code)
                        )
                        for account_id, code in to_type.items()
                    )
                )
                for account_id, code in to_type.items():
                    typed[account_id].add(code)
                await asyncio.sleep(0.1)

    async def every_code_arrived(self) -> bool:
        return all(self.gateway.codes_for(account_id) for account_id in self.accounts)

    def handle(self, account_id: str) -> WorkflowHandle[AccountDeletion, DeletionReceipt]:
        return self.client.get_workflow_handle_for(AccountDeletion.run, workflow_id_for(account_id))

    async def stages(self) -> dict[str, Stage | None]:
        """Each deletion's stage as recorded in PostgreSQL (no worker needed to read it)."""
        rows = await self.pool.fetch(
            "select account_id, stage from deletions where account_id = any($1)", self.accounts
        )
        recorded = {row["account_id"]: Stage(row["stage"]) for row in rows}
        return {account_id: recorded.get(account_id) for account_id in self.accounts}

    async def all_purging(self) -> bool:
        return all(stage in PURGING_OR_LATER for stage in (await self.stages()).values())

    async def purged(self) -> int:
        """Rows purged so far: committed in the same transaction as each batch."""
        return int(
            await self.pool.fetchval(
                "select coalesce(sum(rows), 0) from purge_progress where account_id = any($1)",
                self.accounts,
            )
        )

    async def purges_in_flight(self) -> int:
        """Purges that have purged rows but not completed."""
        return int(
            await self.pool.fetchval(
                """
                select count(*) from (
                    select distinct account_id, product from purge_progress
                    where account_id = any($1)) started
                where not exists (
                    select 1 from product_purges done
                    where done.account_id = started.account_id and done.product = started.product)
                """,
                self.accounts,
            )
        )

    async def purged_at_least(self, rows: float) -> bool:
        return await self.purged() >= rows

    async def purge_further(self, fraction: float, timeout: float = 120) -> None:
        """Waits until every deletion is purging, then until `fraction` of the rows left at
        that moment are purged: a point inside the purges, whatever came before."""
        await wait_until(self.all_purging, "every deletion purging", timeout)
        before = await self.purged()
        logger.info("every deletion purging, %d of %d rows purged", before, self.total)
        target = before + fraction * (self.total - before)
        await wait_until(
            functools.partial(self.purged_at_least, target),
            f"{fraction:.0%} of the {self.total - before} rows left purged",
            timeout,
        )

    async def receipts(self, timeout: float = RECEIPTS_TIMEOUT) -> dict[str, DeletionReceipt]:
        async def result(account_id: str) -> DeletionReceipt:
            return await self.handle(account_id).result()

        async with asyncio.timeout(timeout):
            results = await asyncio.gather(*(result(a) for a in self.accounts))
        return dict(zip(self.accounts, results, strict=True))

    async def assert_each_deleted_exactly_once(self, receipts: dict[str, DeletionReceipt]) -> None:
        assert sorted(receipts) == sorted(self.accounts)
        for account_id, receipt in receipts.items():
            await assert_deleted_exactly_once(
                self.pool, account_id, self.seeded[account_id], receipt
            )


def _histories_of(task_queue: str) -> str:
    return f"WorkflowType='AccountDeletion' AND TaskQueue='{task_queue}'"


# --- 1. the worker killed, again and again --------------------------------------------------

KILLS = 3


@dataclass(frozen=True)
class Kill:
    """Where a kill landed: rows purged by then, and purges started but not completed."""

    purged: int
    purges_in_flight: int


async def test_a_worker_sigkilled_again_and_again_mid_purge_loses_nothing_and_repeats_nothing(
    client: Client, pool: asyncpg.Pool, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    """A worker dies without warning (the OOM killer, a lost node) several times while
    deletions are purging; each time a new worker takes over from the committed progress.

    Each kill lands at a random point of the purges, after the worker before it has purged
    part of what was left (so every worker took over first). The kills begin once every
    deletion is purging: a kill during a short activity (a prerequisite check, a freeze) only
    parks it until its start-to-close timeout, which would test Temporal, not the purges."""
    seed = fault_seed()
    rng = random.Random(seed)
    seeded = await seed_accounts(pool)
    kills: list[Kill] = []
    with reproducible_with(seed), running_gateway() as gateway, ExitStack() as workers:
        fleet = Fleet(client, pool, task_queue, gateway, seeded)
        env = worker_env(client, task_queue, database_url, gateway)
        log = tmp_path / "workers.log"
        worker = workers.enter_context(worker_process(env, log))
        await fleet.start()
        await fleet.confirm()
        for _ in range(KILLS):
            await fleet.purge_further(rng.uniform(0.05, 0.25))
            await asyncio.sleep(rng.uniform(0, 0.3))
            worker.send_signal(signal.SIGKILL)
            await asyncio.to_thread(worker.wait, 10)
            kills.append(Kill(await fleet.purged(), await fleet.purges_in_flight()))
            logger.info("worker killed: %s", kills[-1])
            await asyncio.sleep(rng.uniform(0.2, 2.0))  # no worker at all for a moment
            worker = workers.enter_context(worker_process(env, log))
        receipts = await fleet.receipts()

        for kill in kills:
            # In flight is the criterion: `purged` also counts the rows the runs themselves
            # made (sessions, codes), so a kill during the last purge can pass `total`.
            assert kill.purged > 0 and kill.purges_in_flight, (
                f"a kill landed outside the purges: {kills}"
            )
        await fleet.assert_each_deleted_exactly_once(receipts)
    assert await replay_every_history(client, _histories_of(task_queue)) >= DELETIONS


# --- 2. the Temporal server killed and started again ----------------------------------------


async def test_the_temporal_server_killed_and_restarted_mid_purge_loses_nothing(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    """The Temporal server goes away (a crash, a deploy of the cluster) while deletions are
    purging and comes back on the same persistent store. The worker keeps running through the
    outage (no supervisor restarts it) and every deletion carries on from its history."""
    seed = fault_seed()
    rng = random.Random(seed)
    outage_at = rng.uniform(0.05, 0.5)
    outage = rng.uniform(3.0, 8.0)
    payload_keys = os.environ.setdefault("PAYLOAD_KEYS", TEST_PAYLOAD_KEYS)
    port, ui_port = free_ports(2)
    server = EmbeddedTemporal(
        db_file=tmp_path / "temporal" / "temporal.db", port=port, ui_port=ui_port
    )
    await asyncio.to_thread(server.start)
    try:
        client = await Client.connect(
            server.address,
            namespace=server.namespace,
            data_converter=data_converter_for_keys(payload_keys),
        )
        seeded = await seed_accounts(pool)
        task_queue = "account-deletion"
        with reproducible_with(seed), running_gateway() as gateway:
            fleet = Fleet(client, pool, task_queue, gateway, seeded)
            env = worker_env(client, task_queue, database_url, gateway)
            log = tmp_path / "worker.log"
            with worker_process(env, log) as worker:
                await fleet.start()
                await fleet.confirm()
                await fleet.purge_further(outage_at)
                # (Measured before: the running purges go on against PostgreSQL meanwhile.)
                purged, in_flight = await fleet.purged(), await fleet.purges_in_flight()
                assert 0 < purged < fleet.total and in_flight, (
                    f"the outage must begin mid-purge: {purged} rows purged, {in_flight} running"
                )
                process = server._process
                assert process is not None
                process.send_signal(signal.SIGKILL)  # harsher than stop(): no clean shutdown
                await asyncio.to_thread(process.wait, 10)
                server.stop()
                await asyncio.sleep(outage)
                assert worker.poll() is None, (
                    f"the worker died while the server was away:\n{log.read_text()[-3000:]}"
                )
                await asyncio.to_thread(server.start)
                receipts = await fleet.receipts()
                assert worker.poll() is None, f"the worker died:\n{log.read_text()[-3000:]}"
            await fleet.assert_each_deleted_exactly_once(receipts)
            # The histories live on this server only: replay them before it goes.
            assert await replay_every_history(client) >= DELETIONS
    finally:
        await asyncio.to_thread(server.stop)


# --- 3. PostgreSQL stopped for half a minute ------------------------------------------------

POSTGRES_OUTAGE_SECONDS = 28.0
"""From the stop to the start command; PostgreSQL answers again a second or two later."""
CONNECTION_ERRORS = (
    "ConnectionDoesNotExistError",
    "ConnectionRefusedError",
    "FileNotFoundError",
    "CannotConnectNowError",
    "AdminShutdownError",
    "InterfaceError",
)
"""How a stopped PostgreSQL shows in the worker's log: a connection cut, refused, or gone."""


async def test_postgresql_down_for_half_a_minute_mid_purge_delays_but_loses_nothing(
    client: Client, task_queue: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """PostgreSQL stops (a failover, a restart for an upgrade) while deletions are purging and
    is back half a minute later. Meanwhile every database activity fails and is retried; the
    worker's pool reconnects and every deletion finishes as if nothing had happened."""
    seed = fault_seed()
    rng = random.Random(seed)
    outage_at = rng.uniform(0.05, 0.5)
    directory = tmp_path_factory.mktemp("pg")  # short: the Unix socket lives in it
    async with migrated_embedded_postgres(directory / "data") as (server, dsn):
        pool = await create_pool(dsn, max_size=4)
        try:
            seeded = await seed_accounts(pool)
            with reproducible_with(seed), running_gateway() as gateway:
                fleet = Fleet(client, pool, task_queue, gateway, seeded)
                env = worker_env(client, task_queue, dsn, gateway)
                log = tmp_path_factory.mktemp("pg-worker") / "worker.log"
                with worker_process(env, log) as worker:
                    await fleet.start()
                    await fleet.confirm()
                    await fleet.purge_further(outage_at)
                    purged, in_flight = await fleet.purged(), await fleet.purges_in_flight()
                    assert 0 < purged < fleet.total and in_flight, (
                        f"the outage must begin mid-purge: {purged} rows purged,"
                        f" {in_flight} running"
                    )
                    pool.terminate()  # the test's own connections go down with the server
                    log_size = log.stat().st_size
                    stopped_at = time.monotonic()
                    await asyncio.to_thread(server.stop)

                    # Meanwhile the purges fail and Temporal retries them.
                    retried = await retried_purges(client, fleet.accounts, within=20)
                    assert retried, "no purge was retried while PostgreSQL was down"
                    await asyncio.sleep(POSTGRES_OUTAGE_SECONDS - (time.monotonic() - stopped_at))
                    with log.open("rb") as out:
                        out.seek(log_size)
                        during = out.read().decode(errors="replace")
                    assert any(name in during for name in CONNECTION_ERRORS), during[-3000:]
                    assert worker.poll() is None, f"the worker died:\n{during[-3000:]}"

                    assert await asyncio.to_thread(server.start) == dsn
                    pool = fleet.pool = await create_pool(dsn, max_size=4)
                    receipts = await fleet.receipts()
                    assert worker.poll() is None, f"the worker died:\n{log.read_text()[-3000:]}"
                await fleet.assert_each_deleted_exactly_once(receipts)
            assert await replay_every_history(client, _histories_of(task_queue)) >= DELETIONS
        finally:
            pool.terminate()


async def retried_purges(client: Client, accounts: list[str], *, within: float) -> list[str]:
    """Purges of these deletions that Temporal runs again after a failure, waited for up to
    `within` seconds: `<account>: <product> attempt <n>`."""
    deadline = time.monotonic() + within
    while True:
        retried = []
        for account_id in accounts:
            description = await client.get_workflow_handle(workflow_id_for(account_id)).describe()
            retried += [
                f"{account_id}: {pending.activity_id} attempt {pending.attempt}"
                for pending in description.raw_description.pending_activities
                if pending.activity_type.name == "purge_product" and pending.attempt > 1
            ]
        if retried or time.monotonic() > deadline:
            return retried
        await asyncio.sleep(0.5)

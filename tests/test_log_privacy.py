"""Nothing personal or secret in the logs of a complete deletion: no code, email or phone."""

from __future__ import annotations

import logging

import pytest

from tests.support import Stack, confirm_after_one_wrong_code, contact_of, new_account


async def test_the_logs_of_a_deletion_hold_no_code_email_or_phone(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    pool, inbox, deletions = stack.pool, stack.inbox, stack.deletions
    account_id = await new_account(pool)
    account = await contact_of(pool, account_id)
    caplog.set_level(logging.DEBUG)
    async with stack.worker():
        code = await confirm_after_one_wrong_code(deletions, inbox, account_id)
        await (await deletions.handle(account_id)).result()
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "verification attempt: wrong" in logged  # the run's activities did log
    for secret in (code, account["email"], account["phone"], account["phone"][1:]):
        assert secret not in logged

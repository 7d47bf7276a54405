"""The user's phone and mailbox in a test: an in-process Notifier that keeps what it delivers.

For a worker process (`python worker.py`), whose notifier cannot be handed an object, the
webhook gateway in `gateway.py` plays the same part.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from activities.notify import Message

CODE = re.compile(r"\b(\d{6,8})\b")
"""A verification code in a message's body."""


@dataclass
class Inbox:
    """A Notifier that keeps what it delivers, as the user's phone and mailbox would."""

    messages: list[Message] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def deliver(self, message: Message) -> None:
        self.messages.append(message)
        self.arrived.set()

    def codes(self, account_id: str) -> list[str]:
        return [
            match.group(1)
            for message in self.messages
            if message.account_id == account_id and (match := CODE.search(message.body))
        ]

    async def next_code(self, account_id: str, *, after: int = 0, timeout: float = 20) -> str:
        """The first code for the account beyond the `after` codes already seen."""
        async with asyncio.timeout(timeout):
            while len(codes := self.codes(account_id)) <= after:
                self.arrived.clear()
                await self.arrived.wait()
        return codes[after]

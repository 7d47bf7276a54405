"""The verification page in a real headless Chromium, as the user meets it.

The API runs on a real loopback socket (uvicorn inside the test's event loop) and Playwright
drives Debian's Chromium at /usr/bin/chromium, which `scripts/install-browser` installs; no test
tool ever downloads a browser of its own. Nothing here is skipped: without the browser the tests
fail and say how to install it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect
from temporalio.client import Client

from contract.models import DeletionStatus
from contract.stages import Stage
from core.config import Settings
from service.api import create_app
from service.api.links import LinkSigner
from starter.client import DeletionClient
from tests.support import Inbox, new_account, running_worker, wait_for_stage

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "browser-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REFUSED_TITLE = "This link does not work"
FORM_CONTROLS = {"INPUT", "BUTTON", "SELECT", "TEXTAREA"}


# --- the browser and the server ----------------------------------------------------------------


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/install-browser (it installs Debian's chromium "
            "package; the browser tests never download a browser of their own)"
        )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
        )
        yield browser
        await browser.close()


class _Server(uvicorn.Server):
    """uvicorn in the test's own event loop, leaving the test runner's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class Api:
    base_url: str
    settings: Settings
    http: httpx.AsyncClient
    """The console backend's HTTP client, over the same real socket as the browser."""

    async def start_deletion(self, account_id: str) -> dict[str, Any]:
        started = await self.http.post(f"/v1/accounts/{account_id}/deletion", headers=AUTH)
        assert started.status_code == 202, started.text
        body: dict[str, Any] = started.json()
        return body


@pytest.fixture
async def api(client: Client, pool: asyncpg.Pool, task_queue: str) -> AsyncIterator[Api]:
    """The real API process's app served on a free loopback port, for Chromium to reach."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    settings = Settings(
        api_token=TOKEN,
        temporal_task_queue=task_queue,
        api_host="127.0.0.1",
        api_port=port,
        public_base_url=base_url,
    )
    app = create_app(settings, pool=pool, client=client)
    server = _Server(
        uvicorn.Config(app, lifespan="on", log_config=None, log_level="warning", access_log=False)
    )
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not serving.done(), "the API server stopped while starting"
                await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            assert (await http.get("/healthz")).status_code == 200
            yield Api(base_url, settings, http)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=10)
        listener.close()


async def _awaiting_code(
    api: Api, client: Client, pool: asyncpg.Pool, task_queue: str, inbox: Inbox, account_id: str
) -> tuple[str, str, DeletionStatus]:
    """Starts the deletion through the API: (verification_url, code, status awaiting the code)."""
    started = await api.start_deletion(account_id)
    url = started["verification_url"]
    assert isinstance(url, str) and url.startswith(f"{api.base_url}/verify/")
    assert account_id not in url, "the link must not carry the account id in clear"
    code = await inbox.next_code(account_id)
    status = await wait_for_stage(
        DeletionClient(client, pool, task_queue), account_id, Stage.AWAITING_VERIFICATION
    )
    return url, code, status


def _wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


# --- scenario 1: a wrong code, then the right one, to the deleted state --------------------------


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
async def test_a_wrong_code_shows_attempts_left_and_the_right_code_deletes_the_account(
    api: Api,
    browser: Browser,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    javascript: bool,
) -> None:
    inbox = Inbox()
    account_id = await new_account(pool)
    email = await pool.fetchval("select email from accounts where account_id = $1", account_id)
    deletions = DeletionClient(client, pool, task_queue)
    async with running_worker(client, pool, task_queue, inbox):
        url, code, status = await _awaiting_code(api, client, pool, task_queue, inbox, account_id)
        assert status.verification is not None
        context = await browser.new_context(java_script_enabled=javascript)
        try:
            page = await context.new_page()
            # The context really runs no script when JavaScript is off.
            await page.set_content("<title>static</title><script>document.title='js'</script>")
            assert await page.title() == ("js" if javascript else "static")
            opened = await page.goto(url)
            assert opened is not None and opened.status == 200
            await expect(page).to_have_title("Delete your account")
            main = page.get_by_role("main")
            # Where the code went, masked, and how long it stays valid.
            destination = status.verification.destination
            assert "***" in destination
            await expect(main).to_contain_text(f"We sent a code to {destination}")
            expires = status.verification.code_expires_at
            await expect(main).to_contain_text(f"(until {expires:%H:%M} UTC")
            await expect(main).to_contain_text(re.compile(r"valid for about (9|10) more minutes"))
            assert email not in await page.content()

            # A wrong code, typed with the keyboard into the labelled field, sent with Enter.
            field = page.get_by_label("Verification code")
            await field.click()
            await page.keyboard.type(_wrong(code))
            async with page.expect_navigation():
                await page.keyboard.press("Enter")
            alert = page.get_by_role("alert")
            await expect(alert).to_contain_text("That code is not right.")
            await expect(alert).to_contain_text("4 attempts left")
            after_wrong = (await deletions.status(account_id)).verification
            assert after_wrong is not None and after_wrong.attempts_left == 4
            assert _wrong(code) not in page.url, "a code must never end up in a URL"
            assert page.url == url

            # The right code, sent with the button: accepted, and the page says what follows.
            await page.get_by_label("Verification code").click()
            await page.keyboard.type(code)
            async with page.expect_navigation():
                await page.get_by_role("button", name="Delete my account").click()
            assert code not in page.url
            await expect(main).not_to_contain_text("not right")
            await expect(main).to_contain_text(
                re.compile(r"Your code was accepted|Your account has been deleted")
            )

            receipt = await (await deletions.handle(account_id)).result()
            assert receipt.outcome is Stage.DELETED
            await page.reload()
            await expect(page.get_by_role("status")).to_have_text("Your account has been deleted.")
            await expect(page.get_by_label("Verification code")).to_have_count(0)
        finally:
            await context.close()


# --- scenario 2: tampered and expired links are refused ------------------------------------------


async def test_a_tampered_or_expired_link_is_refused_with_the_403_page(
    api: Api, browser: Browser, client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    inbox = Inbox()
    account_id = await new_account(pool)
    async with running_worker(client, pool, task_queue, inbox):
        url, _, status = await _awaiting_code(api, client, pool, task_queue, inbox, account_id)
        link = url.rsplit("/", 1)[1]
        payload, _, signature = link.partition(".")
        assert payload and signature
        # One character of the signature changed (in the middle: every bit there is used).
        i = len(signature) // 2
        tampered = (
            f"{payload}.{signature[:i]}{'B' if signature[i] != 'B' else 'C'}{signature[i + 1 :]}"
        )
        run_id = await DeletionClient(client, pool, task_queue).current_run_id(account_id)
        assert run_id is not None
        short_lived = LinkSigner(api.settings.link_secret(), lifetime_seconds=600)
        expired = short_lived.sign(account_id, run_id, now=time.time() - 3600)
        fresh = short_lived.sign(account_id, run_id)

        context = await browser.new_context()
        try:
            page = await context.new_page()
            # The control: the genuine link and a fresh one from the same signer both open.
            for good in (url, f"{api.base_url}/verify/{fresh}"):
                response = await page.goto(good)
                assert response is not None and response.status == 200
                await expect(page.get_by_label("Verification code")).to_be_visible()

            for bad in (tampered, expired):
                response = await page.goto(f"{api.base_url}/verify/{bad}")
                assert response is not None and response.status == 403
                await expect(page).to_have_title(REFUSED_TITLE)
                await expect(page.get_by_role("heading", level=1)).to_have_text(REFUSED_TITLE)
                await expect(page.get_by_role("alert")).to_contain_text(
                    "The link is not valid or has expired."
                )
                # Nothing about the account, and nothing to act with.
                await expect(page.get_by_role("main")).not_to_contain_text("We sent a code")
                await expect(page.locator("form")).to_have_count(0)

            # The genuine link still works, and its cancel button ends the deletion.
            await page.goto(url)
            async with page.expect_navigation():
                await page.get_by_role("button", name="Cancel the deletion").click()
            await expect(page.get_by_role("main")).to_contain_text("The deletion was cancelled.")
        finally:
            await context.close()
        receipt = await (await DeletionClient(client, pool, task_queue).handle(account_id)).result()
        assert receipt.outcome is Stage.CANCELLED


# --- scenario 3: accessibility basics, measured in the browser -----------------------------------

_TEXT_COLOURS = """
() => {
  const opaque = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const bg = getComputedStyle(e).backgroundColor;
      if (bg && bg !== 'transparent' && !/^rgba\\(.*,\\s*0\\)$/.test(bg)) return bg;
    }
    return 'rgb(255, 255, 255)';
  };
  const out = [];
  for (const el of document.querySelectorAll('body, body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    const note = el.classList.contains('note');
    if (!own && !note && el !== document.body) continue;
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden') continue;
    out.push({
      what: el.tagName.toLowerCase() + (el.className ? '.' + el.className.replace(/ +/g, '.') : ''),
      text: el.textContent.trim().slice(0, 40),
      color: style.color,
      background: opaque(el),
      note,
    });
  }
  return out;
}
"""

_FOCUSED = """
() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  return {
    tag: el.tagName,
    name: el.getAttribute('aria-label') || el.textContent.trim() || el.id,
    focusVisible: el.matches(':focus-visible'),
    outlineStyle: style.outlineStyle,
    outlineWidth: parseFloat(style.outlineWidth),
    outlineColor: style.outlineColor,
  };
}
"""


def _rgb(css: str) -> tuple[float, float, float]:
    match = re.fullmatch(r"rgba?\(\s*([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\s*\)", css)
    assert match, f"unexpected computed colour {css!r}"
    assert match.group(4) is None or float(match.group(4)) == 1, f"translucent colour {css!r}"
    r, g, b = (float(match.group(n)) for n in (1, 2, 3))
    return r, g, b


def _luminance(css: str) -> float:
    def linear(channel: float) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in _rgb(css))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two computed CSS colours."""
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_the_contrast_formula_matches_wcag() -> None:
    assert contrast("rgb(0, 0, 0)", "rgb(255, 255, 255)") == pytest.approx(21)
    assert contrast("rgb(118, 118, 118)", "rgb(255, 255, 255)") == pytest.approx(4.54, abs=0.01)


async def _assert_readable(page: Page, *, notes: int) -> None:
    """Every visible text, the body and each note, at least 4.5:1 against what is behind it."""
    texts: list[dict[str, Any]] = await page.evaluate(_TEXT_COLOURS)
    assert texts[0]["what"] == "body"
    assert sum(1 for t in texts if t["note"]) == notes, texts
    poor = [
        (t["what"], t["text"], t["color"], t["background"], round(ratio, 2))
        for t in texts
        if (ratio := contrast(t["color"], t["background"])) < 4.5
    ]
    assert not poor, f"text below 4.5:1 contrast: {poor}"


async def _assert_focus_shows(page: Page) -> dict[str, Any]:
    focused: dict[str, Any] = await page.evaluate(_FOCUSED)
    assert focused["tag"] in FORM_CONTROLS, focused
    assert focused["focusVisible"], focused
    assert focused["outlineStyle"] not in ("none", "hidden") and focused["outlineWidth"] >= 2, (
        focused
    )
    # WCAG 1.4.11: a focus indicator at least 3:1 against the page behind it.
    assert contrast(focused["outlineColor"], "rgb(255, 255, 255)") >= 3, focused
    return focused


async def test_the_page_is_labelled_keyboard_reachable_visibly_focused_and_high_contrast(
    api: Api,
    browser: Browser,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    tmp_path: Path,
) -> None:
    inbox = Inbox()
    account_id = await new_account(pool)
    async with running_worker(client, pool, task_queue, inbox):
        url, code, _ = await _awaiting_code(api, client, pool, task_queue, inbox, account_id)
        context = await browser.new_context()
        try:
            page = await context.new_page()
            await page.goto(url)
            assert await page.get_attribute("html", "lang") == "en"

            # The code input has a label of its own, tied to it by for/id.
            field = page.get_by_label("Verification code", exact=True)
            await expect(field).to_have_count(1)
            await expect(field).to_have_attribute("id", "code")
            labels = await field.evaluate("el => [...el.labels].map(l => l.textContent.trim())")
            assert labels == ["Verification code"]
            await expect(field).to_have_accessible_description(
                "The digits from the message, without spaces."
            )
            for name in ("Delete my account", "Send a new code", "Cancel the deletion"):
                await expect(page.get_by_role("button", name=name)).to_have_count(1)

            # The first Tab lands on a form control, and the focus is plainly visible.
            await page.keyboard.press("Tab")
            first = await _assert_focus_shows(page)
            # And the code field itself, reached from the keyboard, shows its focus too.
            await page.keyboard.press("Shift+Tab")
            if first["tag"] != "INPUT":
                await expect(field).to_be_focused()
            await _assert_focus_shows(page)

            await _assert_readable(page, notes=0)

            # A resend within the first minute answers with a plain note, a wrong code with an
            # error note: each readable.
            async with page.expect_navigation():
                await page.get_by_role("button", name="Send a new code").click()
            await expect(page.get_by_role("status")).to_contain_text(
                "A new code cannot be sent right now."
            )
            await _assert_readable(page, notes=1)
            await field.click()
            await page.keyboard.type(_wrong(code))
            async with page.expect_navigation():
                await page.keyboard.press("Enter")
            await expect(page.get_by_role("alert")).to_contain_text("That code is not right.")
            await _assert_readable(page, notes=1)
            await page.screenshot(path=tmp_path / "verification-page.png", full_page=True)

            # The refusal page is readable too.
            await page.goto(f"{api.base_url}/verify/not-a-link.at-all")
            await expect(page).to_have_title(REFUSED_TITLE)
            await _assert_readable(page, notes=1)
        finally:
            await context.close()


# --- scenario: a cooling-off, and the page's button that gives the account back -----------------


async def test_in_a_cooling_off_the_page_shows_the_date_and_its_button_restores_the_account(
    api: Api, browser: Browser, client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    inbox = Inbox()
    account_id = await new_account(pool)
    deletions = DeletionClient(client, pool, task_queue)
    async with running_worker(client, pool, task_queue, inbox):
        started = await api.http.post(
            f"/v1/accounts/{account_id}/deletion", headers=AUTH, json={"cooling_off": "P15D"}
        )
        assert started.status_code == 202, started.text
        url = started.json()["verification_url"]
        code = await inbox.next_code(account_id)
        await wait_for_stage(deletions, account_id, Stage.AWAITING_VERIFICATION)
        await deletions.verify(account_id, code)
        status = await wait_for_stage(deletions, account_id, Stage.COOLING_OFF)
        assert status.purge_starts_at is not None
        context = await browser.new_context(java_script_enabled=False)
        try:
            page = await context.new_page()
            opened = await page.goto(url)
            assert opened is not None and opened.status == 200
            main = page.get_by_role("main")
            await expect(main).to_contain_text(
                f"will be deleted on {status.purge_starts_at:%d %B %Y at %H:%M} UTC"
            )
            # Reached with the keyboard and pressed with Enter.
            await page.get_by_role("button", name="Restore my account").focus()
            async with page.expect_navigation():
                await page.keyboard.press("Enter")
            await expect(page.get_by_role("status")).to_contain_text(
                "Your account has been restored"
            )
            await expect(page.get_by_role("button", name="Restore my account")).to_have_count(0)
        finally:
            await context.close()
    assert (await deletions.status(account_id)).stage is Stage.RESTORED
    assert (
        await pool.fetchval("select status from accounts where account_id = $1", account_id)
        == "active"
    )

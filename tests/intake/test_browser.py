"""A person fills in the complaint form in a real browser (headless Chromium), submits it, and reads the
case number on the confirmation page."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
import websockets
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from kefu.intake.app import create_app
from kefu.models import Complaint, Customer
from tests.support.browser import Page, find_or_install_chromium, page_websocket, start_chromium
from tests.support.processes import free_port, kill_9
from tests.support.samples import intake_settings

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="session")
def chromium() -> str:
    binary, reason = find_or_install_chromium()
    if binary is None:
        pytest.skip(f"browser test cannot run: {reason}")
    return binary


@pytest.fixture
def intake_server(sqlite_engine: Engine) -> Iterator[str]:
    """The real app on a real uvicorn at 127.0.0.1, in a thread of this process."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(intake_settings(), sqlite_engine), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    ready = threading.Event()

    def watch() -> None:
        while not server.started and thread.is_alive():
            threading.Event().wait(0.05)
        ready.set()

    threading.Thread(target=watch, daemon=True).start()
    assert ready.wait(20) and server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


async def test_a_person_fills_in_the_form_in_chromium_and_reads_the_case_number(
    chromium: str, intake_server: str, sqlite_engine: Engine, tmp_path: Path
) -> None:
    port = free_port()
    browser = start_chromium(chromium, port, tmp_path / "profile", intake_server + "/", tmp_path / "chromium.log")
    try:
        socket_url = await asyncio.to_thread(page_websocket, port, browser)
        async with websockets.connect(socket_url, max_size=None) as socket:
            page = Page(socket)
            await page.send("Page.enable")
            await page.send("Runtime.enable")
            for _ in range(100):  # the start page may still be loading when DevTools first answers
                if await page.evaluate("document.readyState") == "complete" and await page.evaluate(
                    "!!document.getElementById('submit')"
                ):
                    break
                await asyncio.sleep(0.1)
            assert await page.evaluate("document.documentElement.lang") == "zh-CN"
            # The style sheet applies under the page's Content-Security-Policy (no inline style allowed).
            assert await page.evaluate("getComputedStyle(document.body).maxWidth") == "704px"
            await page.type_into("name", "赵六")
            await page.type_into("phone", "13600136000")
            await page.type_into("order_no", "ZT998877")
            await page.type_into("place", "广州市天河区")
            await page.type_into("content", "快递员没有送货上门，<b>直接</b>放在了门卫处。")
            await page.click("urgent")
            assert await page.evaluate("document.getElementById('urgent').checked") is True
            page.events.clear()
            await page.click("submit")
            await page.wait_event("Page.loadEventFired")
            case_no = await page.evaluate(
                "document.getElementById('case-no') && document.getElementById('case-no').textContent"
            )
            text = await page.evaluate("document.body.innerText")
    finally:
        kill_9(browser)
    assert case_no and case_no.startswith("KF"), text
    assert "您的投诉已受理" in text and "已按紧急投诉登记" in text
    with Session(sqlite_engine) as session:
        complaint = session.scalars(select(Complaint)).one()
        assert complaint.case_no == case_no and complaint.urgent
        assert complaint.content == "快递员没有送货上门，<b>直接</b>放在了门卫处。"
        assert session.scalars(select(Customer.name)).one() == "赵六"


async def test_the_api_docs_render_in_chromium_from_the_package_under_the_csp(
    chromium: str, intake_server: str, tmp_path: Path
) -> None:
    port = free_port()
    browser = start_chromium(chromium, port, tmp_path / "profile", intake_server + "/docs", tmp_path / "chromium.log")
    try:
        socket_url = await asyncio.to_thread(page_websocket, port, browser)
        async with websockets.connect(socket_url, max_size=None) as socket:
            page = Page(socket)
            await page.send("Runtime.enable")
            title = None
            for _ in range(300):  # Swagger UI builds the page from /openapi.json after its bundle loads
                title = await page.evaluate(
                    "document.querySelector('.swagger-ui .info .title') && "
                    "document.querySelector('.swagger-ui .info .title').textContent"
                )
                if title:
                    break
                await asyncio.sleep(0.1)
            operations = await page.evaluate("document.querySelectorAll('.opblock').length")
    finally:
        kill_9(browser)
    assert title and "Kefu intake" in title
    assert operations >= 2  # POST and GET of the complaints API

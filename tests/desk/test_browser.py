"""A person signs in at the entrance in a real browser (headless Chromium) and works in the Prefect UI behind it:
the UI loads through the proxy, calls the API through it without asking for Prefect's own password, and counts
the runs; and a person answers a case's waiting step there with the UI's own Resume form, the answer naming them
(or refused, the run still waiting, when their roles may not answer it)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import websockets
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from kefu.engine.connection import PrefectAuth
from kefu.models import Role
from tests.support.browser import Page, find_or_install_chromium, page_websocket, start_chromium
from tests.support.desk import (
    PASSWORD,
    GuardedPrefect,
    add_person,
    entrance_settings,
    run_state,
    serve_entrance,
    waiting_run,
)
from tests.support.factories import MakeComplaint
from tests.support.processes import free_port, kill_9

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="session")
def chromium() -> str:
    binary, reason = find_or_install_chromium()
    if binary is None:
        pytest.skip(f"browser test cannot run: {reason}")
    return binary


async def wait_for(page: Page, expression: str, tries: int = 300) -> object:
    value = None
    for _ in range(tries):  # the page is another process: poll it, bounded
        value = await page.evaluate(expression)
        if value:
            return value
        await asyncio.sleep(0.1)
    return value


async def test_a_person_signs_in_and_the_prefect_ui_lists_the_runs_through_the_entrance(
    chromium: str, guarded_prefect: GuardedPrefect, sqlite_engine: Engine, tmp_path: Path
) -> None:
    with httpx.Client(base_url=guarded_prefect.api_url, auth=PrefectAuth(guarded_prefect.auth_string)) as api:
        flow = api.post("/flows/", json={"name": "entrance-browser-check"}).json()
        run = api.post(
            "/flow_runs/",
            json={"flow_id": flow["id"], "name": "entrance-sees-this-run", "state": {"type": "COMPLETED"}},
        )
        assert run.status_code == 201, run.text
    add_person(sqlite_engine, "li.kefu", Role.AGENT)
    with serve_entrance(entrance_settings(tmp_path, guarded_prefect), sqlite_engine) as served:
        port = free_port()
        start = f"{served.url}/signin?next=/prefect/runs"
        browser = start_chromium(chromium, port, tmp_path / "profile", start, tmp_path / "chromium.log")
        try:
            socket_url = await asyncio.to_thread(page_websocket, port, browser)
            async with websockets.connect(socket_url, max_size=None) as socket:
                page = Page(socket)
                await page.send("Page.enable")
                await page.send("Runtime.enable")
                assert await wait_for(page, "document.readyState === 'complete' && !!document.getElementById('signin')")
                await page.type_into("login", "li.kefu")
                await page.type_into("password", PASSWORD)
                page.events.clear()
                await page.click("signin")
                await page.wait_event("Page.loadEventFired")
                # The runs page counts the runs and offers this run's flow as a filter: data read through the proxy
                # (the server is shared with the proxy's tests, which add runs of their own).
                listed = await wait_for(
                    page,
                    "/\\b\\d+ runs?\\b/.test(document.body.innerText) && "
                    "document.body.innerText.includes('entrance-browser-check')",
                )
                text = await page.evaluate("document.body.innerText")
                api_calls = await page.evaluate(
                    "performance.getEntriesByType('resource').filter(e => e.name.includes('/api/'))"
                    ".map(e => [new URL(e.name).pathname, e.responseStatus])"
                )
                where = await page.evaluate("location.pathname")
                cookie_visible = await page.evaluate("document.cookie.includes('kefu_desk')")
        finally:
            kill_9(browser)
    assert listed, text[-1500:]
    assert ["/api/flow_runs/paginate", 200] in api_calls, api_calls  # through the entrance, no password asked
    assert all(status == 200 for _, status in api_calls), api_calls
    assert where.startswith("/prefect/")
    assert not cookie_visible  # HttpOnly: the page's scripts never see the session


async def test_a_step_is_answered_in_the_proxied_prefect_ui_as_the_signed_in_person_and_refused_without_the_role(
    chromium: str,
    guarded_prefect: GuardedPrefect,
    db: Session,
    engine: Engine,
    make_complaint: MakeComplaint,
    tmp_path: Path,
) -> None:
    """A case waits at its classification in the Prefect UI behind the entrance: finance opens it, presses Resume
    and Submit, and is told they may not answer, the run still waiting; the agent does the same and the answer
    names the agent — the form never asked who answers."""
    if engine.dialect.name != "sqlite":
        pytest.skip("the browser works through the entrance the same way on either database; it costs seconds")
    agent = add_person(engine, "li.kefu", Role.AGENT)
    add_person(engine, "zhao.caiwu", Role.FINANCE)
    complaint = make_complaint()
    run_id = waiting_run(guarded_prefect, db, complaint)
    run_page = f"/prefect/runs/flow-run/{run_id}"
    with serve_entrance(entrance_settings(tmp_path, guarded_prefect), engine) as served:
        port = free_port()
        browser = start_chromium(chromium, port, tmp_path / "profile", "about:blank", tmp_path / "chromium.log")
        try:
            socket_url = await asyncio.to_thread(page_websocket, port, browser)
            async with websockets.connect(socket_url, max_size=None) as socket:
                page = Page(socket)
                await page.send("Page.enable")
                await page.send("Runtime.enable")

                async def answer_as(login: str, outcome: str) -> str:
                    await page.send("Network.clearBrowserCookies")
                    page.events.clear()
                    await page.send("Page.navigate", url=f"{served.url}/signin?next={run_page}")
                    await page.wait_event("Page.loadEventFired")
                    assert await wait_for(page, "!!document.getElementById('signin')")
                    await page.type_into("login", login)
                    await page.type_into("password", PASSWORD)
                    await page.click("signin")
                    opened = await open_resume_form(page)
                    assert opened, await page.evaluate("document.body.innerText")
                    # The outcome is a toast that goes away again: keep the page's text as it shows it.
                    await page.evaluate(
                        "window.kefuSeen = ''; new MutationObserver(() => { const t = document.body.innerText; "
                        f"if (t.includes({json.dumps(outcome)})) window.kefuSeen = t; }})"
                        ".observe(document.body, {subtree: true, childList: true, characterData: true})"
                    )
                    await page.click_button("Submit")
                    await wait_for(page, "window.kefuSeen !== ''")
                    calls = await page.evaluate(
                        "JSON.stringify(performance.getEntriesByType('resource').filter(e => e.name.includes('resume'))"
                        ".map(e => [new URL(e.name).pathname, e.responseStatus]))"
                    )
                    seen = await page.evaluate("window.kefuSeen || document.body.innerText")
                    return str(seen) + "\n" + str(calls)

                refused = await answer_as("zhao.caiwu", "无权处理此步骤")
                still = run_state(guarded_prefect, run_id)
                accepted = await answer_as("li.kefu", "Flow run resumed")
        finally:
            kill_9(browser)
    assert "无权处理此步骤" in refused and "客服人员" in refused, refused[-1500:]  # the proxy's reason, shown
    assert still["type"] == "PAUSED" and still["answers"] == []
    assert "Flow run resumed" in accepted, accepted[-1500:]  # the UI's own success notice
    after = run_state(guarded_prefect, run_id)
    assert after["type"] != "PAUSED"
    assert [a["actor_staff_id"] for a in after["answers"]] == [agent]


async def open_resume_form(page: Page, within: float = 90.0) -> bool:
    """Press the run page's Resume and wait for its form, as a person would: once the page has settled.

    Why a click opened no modal: Chromium's 800x600 window gets the UI's narrow layout, whose menu bar stays fixed
    at the top; the click helper scrolled the button to the top of the view (under that bar) once the page grew
    taller than the window (a cold load fills the logs and details while the view still fades in), and the click
    landed on the bar. The helper now scrolls to the middle; here a click is made only on a settled button (the
    run shown Suspended, no transition running, the same box twice and the button itself under its middle), never
    through an open modal, and the modal counts as open only with its form loaded (before the run's input schema
    comes, it shows a bare "Do you want to resume" and Submit would send an empty answer)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:  # bounded: each pass waits for the page, not for time
        if not await page.evaluate(MODAL_SHOWN):
            if not await wait_for(page, SETTLED_RESUME, tries=100):
                continue
            await page.click_button("Resume")
        if await wait_for(page, FORM_READY, tries=50):
            return True
    return False


# A finite animation still running: the page (or the modal) is still moving. (Spinners loop forever; they don't count.)
MOVING = (
    "document.getAnimations().some(a => a.playState === 'running' && a.effect"
    " && a.effect.getComputedTiming().iterations !== Infinity)"
)
MODAL_SHOWN = "document.body.innerText.includes('Resume Flow Run')"
SETTLED_RESUME = f"""(() => {{
  const b = [...document.querySelectorAll('button')].filter(b => b.innerText.trim() === 'Resume'
    && b.offsetParent !== null).pop();
  if (!b || !/\\bSuspended\\b/.test(document.body.innerText) || {MOVING}) return false;
  b.scrollIntoView({{block: 'center', inline: 'center'}});
  const r = b.getBoundingClientRect(), box = [r.x, r.y, r.width, r.height].join();
  const still = window.kefuResumeBox === box;
  window.kefuResumeBox = box;
  const under = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
  return still && !!under && b.contains(under);
}})()"""
FORM_READY = f"""(() => {{
  const modal = document.querySelector('.p-modal');
  if (!modal || !modal.innerText.includes('Resume Flow Run') || {MOVING}) return false;
  const fields = modal.querySelectorAll('input, textarea, select, [role=combobox]').length;
  const submit = [...modal.querySelectorAll('button')].filter(b => b.innerText.trim() === 'Submit').pop();
  if (!fields || !submit) return false;
  const r = submit.getBoundingClientRect();
  const under = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
  return !!under && submit.contains(under);
}})()"""

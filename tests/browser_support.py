"""Shared by the tests that start a server and drive a real browser: a free port, a uvicorn
server in a thread on 127.0.0.1, and Debian's chromium launched through Playwright."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(app: Any, what: str = "the server", timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {timeout:.0f} s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def launch_chromium(playwright: Any) -> Any:
    """Debian's chromium, headless, no sandbox (a test tool's own browser download fails here)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


# -- accessibility: axe-core (WCAG 2.0 / 2.1 / 2.2, levels A and AA) and the page's width --------
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
NARROW = {"width": 360, "height": 740}
SIZES = {"desktop": DESKTOP, "phone": PHONE}


def settle(page: Any) -> None:
    """Wait two animation frames: layout, resize observers and what they redraw have run."""
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def axe_violations(page: Any, tags: list[str] = AXE_TAGS) -> list[dict[str, Any]]:
    """axe-core's violations of the rules with ``tags`` (default: WCAG A/AA) on the page as it
    is now (axe-core from axe-playwright-python, injected once per document)."""
    from axe_playwright_python.base import AXE_SCRIPT

    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SCRIPT)
    options = {"runOnly": {"type": "tag", "values": tags}, "resultTypes": ["violations"]}
    result = page.evaluate("options => axe.run(document, options)", options)
    return list(result["violations"])


def sideways_overflow(page: Any) -> int:
    """How many CSS pixels the page is wider than its window (0: no horizontal page scroll)."""
    return int(
        page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    )


def check_accessible(page: Any, what: str, minor_ok: frozenset[str] = frozenset()) -> None:
    """At 1366x768 and at 390x844: no axe violation of impact serious or critical, no minor or
    moderate one outside ``minor_ok`` (each listed with why where it is passed), and at the
    phone size and at 360 px no sideways page scroll. Leaves the page at the desktop size."""
    problems = []
    for size_name, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        settle(page)
        shots = os.environ.get("LSTMKIT_A11Y_SHOTS")  # a folder: a screenshot of each check
        if shots:
            name = "".join(c if c.isalnum() else "-" for c in what)
            page.screenshot(path=f"{shots}/{name}-{size_name}.png", full_page=True)
        if os.environ.get("LSTMKIT_AXE_BEST_PRACTICE"):  # axe's other rules, printed only
            for v in axe_violations(page, ["best-practice"]):
                print(f"best-practice: {what} at {size_name}: {v['id']} ({v['impact']})")
        for v in axe_violations(page):
            if v["impact"] in ("serious", "critical") or v["id"] not in minor_ok:
                nodes = "; ".join(" ".join(map(str, n["target"])) for n in v["nodes"][:5])
                problems.append(f"{what} at {size_name}: {v['id']} ({v['impact']}): {nodes}")
        if size is PHONE:
            over = sideways_overflow(page)
            if over > 0:
                problems.append(f"{what} at {size_name}: the page scrolls sideways by {over} px")
    page.set_viewport_size(NARROW)  # the narrowest phone the pages are made for: width only
    settle(page)
    over = sideways_overflow(page)
    if over > 0:
        problems.append(f"{what} at 360 px: the page scrolls sideways by {over} px")
    page.set_viewport_size(DESKTOP)
    settle(page)
    assert not problems, "\n".join(problems)

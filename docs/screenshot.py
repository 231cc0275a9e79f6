"""Take the README's screenshot of the page at /ui (docs/ui.png), with the model in the store.

    python docs/screenshot.py                          # stance_classifier:latest -> docs/ui.png
    BENTOML_HOME=/tmp/store python docs/screenshot.py --out /tmp/ui.png

Starts the service as `make serve` does (python -m serving.serve, on a free 127.0.0.1 port),
opens /ui in Debian's headless chromium (Playwright, no browser download), pastes ARTICLE,
selects the actor named by --select, and saves a palette PNG (a few tens of KB). The server
is always stopped.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARTICLE = """Russian and American officials met in Riyadh on Tuesday for their first formal talks since the war began.
Lavrov praised the meeting as useful and said Moscow was ready to continue the dialogue.
Rubio called the talks a first step toward ending the war, but warned that a deal would need concessions.
Zelenskyy rejected any agreement reached without Ukraine at the table.
European leaders complained that they had been left out of the negotiations in Saudi Arabia."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int, log: Path) -> subprocess.Popen:
    import httpx

    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "serving.serve", "--port", str(port)], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with code {proc.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop(proc)
    raise SystemExit(f"the server was not ready within 180 s; see {log}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # serve -> bentoml -> workers
        try:
            proc.wait(timeout=90)  # BentoML's workers finish their graceful shutdown first
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def shoot(url: str, out: Path, select: str, width: int) -> str:
    """Screenshot of /ui with ARTICLE classified and ``select``'s evidence shown; returns the model tag."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{url}/ui/")
        page.get_by_label("Sentence or article").fill(ARTICLE)
        page.get_by_role("button", name="Classify").click()
        page.wait_for_function("document.getElementById('status').textContent.includes('Select an actor')", timeout=180_000)
        actor = page.locator(f"button.actor[data-actor='{select}']").first
        if actor.count():
            actor.click()
        png = page.screenshot(full_page=True)
        browser.close()
    # A palette of 64 colours: the page is flat colour and text, so nothing visible is lost.
    Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=64).save(out, optimize=True)
    import httpx

    return httpx.post(f"{url}/classify", json={"sentence": "Lavrov spoke."}).json()["model"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Screenshot the page at /ui for the README.")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "ui.png", help="PNG to write (default: %(default)s)")
    parser.add_argument("--select", default="Marco Rubio", help="the actor whose evidence is shown (default: %(default)s)")
    parser.add_argument("--width", type=int, default=900, help="viewport width in CSS pixels (default: %(default)s)")
    args = parser.parse_args(argv)
    port = free_port()
    proc = serve(port, Path(os.environ.get("TMPDIR", "/tmp")) / f"screenshot_{port}.log")
    try:
        tag = shoot(f"http://127.0.0.1:{port}", args.out, args.select, args.width)
    finally:
        stop(proc)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB), model {tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Drives the playground page (GET /) in headless Chromium as a user would and reports what it showed.

    python3 Tests/Browser/playground_check.py --url http://127.0.0.1:8000/ \
        --image Training/test/images/00000.png --question "What color is the cross?" --budget 4 \
        --screenshot out.png [--api-key KEY] [--pruner accm] [--no-caption] [--max-tokens 8] [--timeout 60]

It loads the page, sets the file input to the image, types the question, picks the budget (and pruner,
caption, max tokens, API key when given), clicks Ask, waits until #status reads `done` (or `error`),
takes a full-page screenshot and prints one JSON object on stdout:

    {"answer": "...", "kept_patches": 4, "chosen_caption": "...", "candidates": 3, "status": "done"}

Exit status: 0 when the page reached `done` with no script error; 1 when it showed an error (its text goes
to stderr and into the JSON's "error"), timed out, or a script on the page threw; 2 for bad arguments or a
browser that cannot start.

Needs Python 3.11, Playwright from PyPI (`pip install playwright`; never `playwright install`) and
Debian's Chromium (`apt-get install chromium`): the browser is launched from --chromium (default
$CHROMIUM or /usr/bin/chromium), not from a Playwright download.
"""
import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="the gateway's playground, e.g. http://127.0.0.1:8000/")
    p.add_argument("--image", required=True, type=Path, help="a PNG or JPEG file")
    p.add_argument("--question", required=True)
    p.add_argument("--budget", type=int, default=4, help="visual tokens kept (an option of #budget)")
    p.add_argument("--pruner", default=None, help="accm, none, random, uniform, cls or text (default: the page's)")
    p.add_argument("--no-caption", action="store_true", help="turn caption compensation off")
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--api-key", default=None)
    p.add_argument("--screenshot", type=Path, default=None, help="where to write a full-page PNG")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the answer")
    p.add_argument("--chromium", default=os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium")
    p.add_argument("--width", type=int, default=1360)
    p.add_argument("--height", type=int, default=900)
    return p.parse_args(argv)


def fail(message, code=2):
    print(f"playground_check: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv=None):
    args = parse_args(argv)
    if not args.image.is_file():
        fail(f"no image at {args.image}")
    if not os.path.exists(args.chromium):
        fail(f"no Chromium at {args.chromium} (apt-get install chromium, or pass --chromium PATH)")
    try:
        from playwright.sync_api import sync_playwright, TimeoutError as PlaywrightTimeout
    except ImportError:
        fail("Playwright is not installed (pip install playwright; the browser is Debian's chromium)")

    page_errors = []
    console_errors = []
    started = time.monotonic()
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(
                executable_path=args.chromium, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        except Exception as error:  # noqa: BLE001 - any launch failure is reported the same way
            fail(f"Chromium at {args.chromium} did not start: {error}")
        try:
            context = browser.new_context(viewport={"width": args.width, "height": args.height}, device_scale_factor=1)
            page = context.new_page()
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)

            response = page.goto(args.url, wait_until="load", timeout=30_000)
            if response is None or not response.ok:
                fail(f"GET {args.url} answered {response.status if response else 'nothing'}", 1)
            content_type = response.headers.get("content-type", "")
            if not content_type.startswith("text/html"):
                fail(f"GET {args.url} is {content_type!r}, not text/html", 1)

            if args.api_key is not None:
                page.fill("#api-key", args.api_key)
            page.set_input_files("#image-input", str(args.image))
            # The image is read and drawn asynchronously: wait for its file name to show.
            page.wait_for_function(
                "name => document.getElementById('file-name').textContent === name", arg=args.image.name, timeout=10_000)
            page.fill("#question", args.question)
            if args.pruner is not None:
                page.select_option("#pruner", args.pruner)
            page.select_option("#budget", str(args.budget))
            if args.no_caption:
                page.uncheck("#caption-toggle", force=True)
            if args.max_tokens is not None:
                page.fill("#max-tokens", str(args.max_tokens))
            page.click("#submit")

            status = None
            try:
                page.wait_for_function(
                    "() => ['done', 'error'].includes(document.getElementById('status').textContent.trim())",
                    timeout=args.timeout * 1000)
            except PlaywrightTimeout:
                status = "timeout"
            if status is None:
                status = (page.text_content("#status") or "").strip()

            if args.screenshot is not None:
                args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.screenshot), full_page=True)

            chosen = page.query_selector("#candidates li.chosen .caption-text")
            result = {
                "answer": page.text_content("#answer") or "",
                "kept_patches": page.locator("#patches .patch.kept").count(),
                "chosen_caption": chosen.text_content() if chosen else None,
                "candidates": page.locator("#candidates li").count(),
                "status": status,
            }
            error_box = page.locator("#error")
            error_text = " — ".join(error_box.inner_text().split("\n")).strip() if error_box.is_visible() else ""
        finally:
            browser.close()

    elapsed = time.monotonic() - started
    problems = []
    if status == "error":
        problems.append("the page showed an error: " + (error_text or "(empty error box)"))
    elif status != "done":
        problems.append(f"no answer within {args.timeout:g} s (status {status!r})")
    if page_errors:
        problems.append("scripts on the page threw: " + " | ".join(page_errors))
    if problems:
        result["error"] = "; ".join(problems)
    print(json.dumps(result, ensure_ascii=False))
    for line in problems:
        print(f"playground_check: {line}", file=sys.stderr)
    for line in console_errors:
        print(f"playground_check: console error: {line}", file=sys.stderr)
    print(f"playground_check: {elapsed:.1f} s", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

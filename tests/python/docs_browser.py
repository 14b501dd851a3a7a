"""Opens /docs in Debian's Chromium (driven by PyPI playwright; its own browser download is never
used) and uses it as a person would: every tag's operations must render, and `GET /info` must
run from the page ("Try it out", "Execute") and show the server's answer. Run inside a network
namespace with only loopback (tests/tests/docs_page.rs), so a page that needed a CDN would stay
blank. Starts the server itself, from the environment it is given, inside that namespace.

argv: the server binary; stdin: {"env": {...}, "port": N, "screenshot": path}.
Prints a JSON report.
"""
import json
import os
import subprocess
import sys
import time
import urllib.request

from playwright.sync_api import sync_playwright

spec = json.load(sys.stdin)
base = f"http://127.0.0.1:{spec['port']}"
env = {"PATH": os.environ.get("PATH", ""), "GRPC_PORT": "0", **spec["env"], "PORT": str(spec["port"]), "HOST": "127.0.0.1"}
server = subprocess.Popen([sys.argv[1], "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
report = {"requests": [], "failed_requests": []}
try:
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page()
        page.on("request", lambda r: report["requests"].append(r.url))
        page.on("requestfailed", lambda r: report["failed_requests"].append(r.url))
        page.goto(f"{base}/docs", wait_until="networkidle")
        page.wait_for_selector(".opblock-tag", timeout=30000)
        report["title"] = page.title()
        report["tags"] = {}
        for section in page.query_selector_all(".opblock-tag-section"):
            tag = section.query_selector(".opblock-tag").get_attribute("data-tag")
            report["tags"][tag] = [
                f"{op.query_selector('.opblock-summary-method').inner_text()} "
                f"{op.query_selector('.opblock-summary-path').get_attribute('data-path')}"
                for op in section.query_selector_all(".opblock")
            ]
        info = page.locator(".opblock-get:has(.opblock-summary-path[data-path='/info'])")
        info.locator(".opblock-summary").click()
        info.locator(".opblock-body").wait_for(timeout=30000)
        # What the document says of each operation: its summary beside the path, its description
        # in the opened operation.
        report["without_summary"] = [
            op.query_selector(".opblock-summary-path").get_attribute("data-path")
            for op in page.query_selector_all(".opblock")
            if not (op.query_selector(".opblock-summary-description") and op.query_selector(".opblock-summary-description").inner_text().strip())
        ]
        description = info.locator(".opblock-description-wrapper .opblock-description").first
        report["info_description"] = description.inner_text().strip() if description.count() else ""
        # The server enables "Try it out" by default; otherwise the button turns it on.
        if not info.locator("button.execute").is_visible():
            info.locator("button.try-out__btn").click()
        info.locator("button.execute").click()
        status = info.locator(".live-responses-table .response .response-col_status")
        status.wait_for(timeout=30000)
        report["info_status"] = status.inner_text().strip()
        report["info_body"] = info.locator(".live-responses-table .response-col_description pre").first.inner_text()
        if spec.get("screenshot"):
            page.screenshot(path=spec["screenshot"], full_page=False)
        browser.close()
finally:
    server.terminate()
    server.wait(timeout=60)
json.dump(report, sys.stdout)

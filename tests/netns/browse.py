"""Headless Chromium (Debian's, driven by Playwright) as a laptop in a client namespace sees the web:
no proxy setting, its names from whatever resolver /etc/resolv.conf names (the firewall sends every
question to the school's resolver). Run inside the namespace:

    ip netns exec NS python tests/netns/browse.py --spki BASE64 URL...

prints one JSON object per URL: the HTTP status, the page title, the text of the page, and the
issuer organisation of the certificate the browser accepted (which CA the page came through)."""

from __future__ import annotations

import argparse
import json
import sys

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spki", required=True, help="base64 SHA-256 of the school CA's public key")
    parser.add_argument("--screenshot-dir", default="")
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--ignore-certificate-errors-spki-list={args.spki}"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags, timeout=60_000)
        page = browser.new_context(ignore_https_errors=False).new_page()
        for i, url in enumerate(args.urls):
            try:
                response = page.goto(url, timeout=30_000)
                out = {"url": url, "status": response.status if response else 0, "title": page.title(),
                       "text": page.inner_text("body")[:2000]}
                if args.screenshot_dir:
                    page.screenshot(path=f"{args.screenshot_dir}/page-{i}.png")
            except Exception as exc:   # reported, not raised: the test asserts on it
                out = {"url": url, "status": 0, "error": f"{type(exc).__name__}: {exc}"[:500]}
            print(json.dumps(out), flush=True)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

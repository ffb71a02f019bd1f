"""Helpers of the workflow end-to-end test (test_workflow_flow.py): the policy of that module, the
real `poortwachter` CLI for accounts, the real console as a uvicorn subprocess (`poortwachter
console`) on the gateway's data directory and clock file, sending its e-mail notifications to a
real local SMTP server (aiosmtpd), and two headless Chromiums: the pupil's, which goes through the
gateway, and the staff's, which talks to the console directly.

Screenshots for the docs: with POORTWACHTER_SCREENSHOTS=1 `shot()` writes docs/img/console-*.png;
without it they go to the test's temporary directory, so an ordinary run changes no tracked file.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from tests.processes import stop

from .pki import spki_sha256
from .proxy import POORTWACHTER, REPO, Gateway

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

AMS = ZoneInfo("Europe/Amsterdam")
CHROMIUM = Path("/usr/bin/chromium")
DOCS_IMG = REPO / "docs" / "img"
DESKTOP = {"width": 1024, "height": 768}
CONSOLE_START_TIMEOUT = 30.0
MAIL_FROM = "poortwachter@werkstroomschool.example"
CLI_TIMEOUT = 60

# The module's policy. 127.0.0.1 (the browser, which cannot pick its source address) is in the
# intercepting classroom zone. Lessons follow each other without a break after the 2nd lesson,
# so "until the end of this lesson" can be told apart from "social media are allowed in breaks".
# Pupils may not open raw IP addresses: were the pupil's browser to reach the console
# (http://127.0.0.1:PORT) through the gateway, it would get a block page instead.
# Who may open what follows policy/default.yaml: a docent social media and the school environment,
# the examencoördinator the school environment, ICT (on request) everything but malware; games
# only ICT (no opened_by).
POLICY = """\
school: "E2E werkstroomschool"
reglement: "Reglement voor de end-to-end tests"
settings:
  unblock_url: "http://127.0.0.1:{console_port}/deblokkeren"
  contact: "de ICT-afdeling / the ICT department"
zones:
  klas:
    kind: classroom
    role: pupil
    cidrs: ["127.0.0.1/32", "127.0.0.2/32"]
    inspection: intercept
    description: "Lokaal 2.14"
  personeel:
    kind: staff
    role: staff
    cidrs: ["127.0.0.4/32"]
    inspection: intercept
timetable:
  timezone: Europe/Amsterdam
  schedules:
    normaal:
      - {{name: 1e-uur, start: "08:30", end: "09:20", kind: lesson}}
      - {{name: 2e-uur, start: "09:20", end: "10:10", kind: lesson}}
      - {{name: 3e-uur, start: "10:10", end: "11:00", kind: lesson}}
      - {{name: pauze, start: "11:00", end: "11:20", kind: break}}
      - {{name: 4e-uur, start: "11:20", end: "12:10", kind: lesson}}
  weekdays: {{monday: normaal, tuesday: normaal, wednesday: normaal, thursday: normaal, friday: normaal,
             saturday: normaal, sunday: normaal}}
categories:
  malware:
    title: "Malware en phishing / Malware and phishing"
    sites: [evil.example]
    overridable: false
    source: "004 art. 12"
  spellen:
    title: "Spellen / Games"
    sites: [coolmathgames.com]
  sociale-media:
    title: "Sociale media / Social media"
    opened_by: [docent, ict]
    sites: [tiktok.com, instagram.com]
  schoolomgeving:
    title: "Schoolomgeving (Magister, ELO) / School environment"
    opened_by: [docent, examencoordinator, ict]
    sites: [magister.net, itslearning.com]
school_environment:
  categories: [schoolomgeving]
articles:
  unblock: "004 art. 12: (tijdelijk) opengesteld via de leidinggevende bij ICT"
  classroom: "004 art. 9: de leraar bepaalt het gebruik in het klaslokaal"
  exam: "004 art. 9: geen gebruik in de les tenzij de leraar anders bepaalt (examens en toetsen)"
  exclusion: "004 art. 22: uitsluiten van toegang tot het netwerk"
rules:
  - name: gevaarlijk
    source: "004 art. 12"
    action: block
    categories: [malware]
  - name: ip-adressen-leerlingen
    source: "004 art. 12"
    action: block
    roles: [pupil]
    ip_literal: true
  - name: spellen-leerlingen
    source: "004 art. 11a"
    action: block
    roles: [pupil]
    categories: [spellen]
  - name: sociale-media-in-de-les
    source: "004 art. 9"
    action: block
    roles: [pupil]
    when: [lesson]
    categories: [sociale-media]
default: allow
default_source: "004 art. 9"
"""


def at(day: dt.date, hhmm: str) -> dt.datetime:
    """`hhmm` ("09:05" or "10:10:30") on `day`, Amsterdam time."""
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm), tzinfo=AMS)


def local_input(when: dt.datetime) -> str:
    """The value of an <input type="datetime-local"> in the school's time zone."""
    return when.astimezone(AMS).strftime("%Y-%m-%dT%H:%M")


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["POORTWACHTER_DATA_DIR"] = str(data_dir)
    env["POORTWACHTER_TEST_CLOCK"] = "1"          # console --clock-file: refused outside tests
    return env


def add_user(data_dir: Path, username: str, role: str, name: str, password: str, zones: tuple[str, ...] = (),
             policy: Path | None = None, email: str | None = None) -> None:
    """`poortwachter --data-dir D user add ... --password-stdin`, as ICT makes accounts (zones are
    checked against `policy`; `email` is where the console's notifications go)."""
    argv = [str(POORTWACHTER), "--data-dir", str(data_dir), "user", "add", username, "--role", role,
            "--name", name, "--password-stdin", "--actor", "e2e"]
    if zones:
        argv += ["--zones", ",".join(zones)]
    if email:
        argv += ["--email", email]
    if policy is not None:
        argv += ["--policy", str(policy)]
    proc = subprocess.run(argv, input=password + "\n", capture_output=True, text=True, env=_env(data_dir),
                          timeout=CLI_TIMEOUT)
    assert proc.returncode == 0, f"user add {username} failed ({proc.returncode}): {proc.stderr}"
    assert "aangemaakt / " in proc.stdout, proc.stdout


class Inbox:
    """A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message the console sends it:
    (recipient, subject, body)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[tuple[str, str, str]] = []
        self._server: Any = None
        self.port = 0

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        body = str(message.get_content()).replace("\r\n", "\n")
        with self._lock:
            self._messages += [(rcpt, str(message["Subject"]), body) for rcpt in envelope.rcpt_tos]
        return "250 OK"

    def start(self, port: int) -> Inbox:
        from aiosmtpd.controller import Controller

        self.port = port
        self._server = Controller(self, hostname="127.0.0.1", port=port)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def to(self, address: str) -> list[tuple[str, str]]:
        """(subject, body) of every message to `address`, oldest first."""
        with self._lock:
            return [(subject, body) for rcpt, subject, body in self._messages if rcpt == address]


class ConsoleServer:
    """`poortwachter console` (a real uvicorn) on the gateway's data directory, policy and clock file;
    with `smtp_port`, it sends its e-mail notifications to 127.0.0.1:smtp_port."""

    def __init__(self, gateway: Gateway, port: int, smtp_port: int | None = None) -> None:
        self.gateway = gateway
        self.port = port
        self.smtp_port = smtp_port
        self.log_file = gateway.workdir / "console.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ConsoleServer:
        gw = self.gateway
        argv = [str(POORTWACHTER), "--data-dir", str(gw.data_dir), "console", "--listen", f"127.0.0.1:{self.port}",
                "--policy", str(gw.policy), "--clock-file", str(gw.clock_file)]
        if self.smtp_port is not None:
            argv += ["--smtp", f"127.0.0.1:{self.smtp_port}", "--mail-from", MAIL_FROM, "--console-url", self.base]
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=gw.workdir, env=_env(gw.data_dir), start_new_session=True)
        deadline = time.monotonic() + CONSOLE_START_TIMEOUT
        while not self._answers():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the console exited with {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the console did not answer within {CONSOLE_START_TIMEOUT:.0f} s:\n{self.output()}")
            time.sleep(0.1)   # waiting for uvicorn to listen
        return self

    def _answers(self) -> bool:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"{self.base}/inloggen", timeout=2) as resp:
                return int(resp.status) == 200
        except (OSError, urllib.error.URLError):
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        stop(self.proc, timeout=15)

    def output(self) -> str:
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")[-6000:]
        except OSError:
            return ""


# --- browsers ---------------------------------------------------------------------------------

COMMON_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def launch_pupil_browser(pw: Playwright, gateway: Gateway, console_port: int) -> Browser:
    """The classroom laptop: everything through the gateway (trusting mitmproxy's key only),
    except the console, which the school serves outside the filter."""
    args = [*COMMON_ARGS, f"--proxy-server={gateway.proxy_url}",
            f"--proxy-bypass-list=127.0.0.1:{console_port}",
            f"--ignore-certificate-errors-spki-list={spki_sha256(gateway.mitm_ca)}"]
    return pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args,
                              env=_env(gateway.data_dir), timeout=60_000)


def launch_staff_browser(pw: Playwright, gateway: Gateway) -> Browser:
    """The staff's browser: straight to the console, no proxy at all."""
    return pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[*COMMON_ARGS, "--no-proxy-server"],
                              env=_env(gateway.data_dir), timeout=60_000)


def new_page(browser: Browser) -> Page:
    context = browser.new_context(viewport=DESKTOP, device_scale_factor=1, locale="nl-NL")
    context.set_default_timeout(10_000)   # a page that never shows up fails in seconds, not half a minute
    return context.new_page()


def login(page: Page, base: str, username: str, password: str, path: str = "/") -> None:
    """Open `path`, get sent to the login form, log in, and land back on `path`."""
    page.goto(base + path)
    assert "/inloggen" in page.url, f"{path} did not ask for a login: {page.url}"
    page.fill("#gebruikersnaam", username)
    page.fill("#wachtwoord", password)
    page.click("button[type=submit]")
    page.wait_for_url(base + path)


def visit(page: Page, url: str) -> tuple[int, str | None, str]:
    """(status, the gateway's rule header, the page text) of `url` in the pupil's browser."""
    response = page.goto(url, wait_until="load")
    assert response is not None
    return response.status, response.headers.get("x-poortwachter-rule"), page.locator("body").inner_text()


def upstream_text(url: str) -> str:
    """What the local upstream answers for `url` (see upstream.py)."""
    scheme, rest = url.split("://", 1)
    host, _, path = rest.partition("/")
    return f"upstream scheme={scheme} host={host} path=/{path}"


def shot(page: Page, name: str, tmp_path: Path, **kwargs: Any) -> Path:
    """docs/img/console-NAME.png when POORTWACHTER_SCREENSHOTS=1, else a temporary file."""
    if os.environ.get("POORTWACHTER_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        path = DOCS_IMG / f"console-{name}.png"
    else:
        path = tmp_path / f"console-{name}.png"
    # no focus ring on the field filled last: the picture shows the page, not the cursor
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(path), **kwargs)
    assert path.stat().st_size > 0
    return path

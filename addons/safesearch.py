"""SafeSearch for Google, Bing and DuckDuckGo, and YouTube Restricted Mode, in zones that ask for it.

Only possible where the gateway decrypts (intercept zones): the search query and headers are
rewritten on the way out, so the search engine itself filters explicit results.
"""

from __future__ import annotations

from mitmproxy import http

from .engine import EngineAddon
from .enforce import HOST, META

YOUTUBE = ("youtube.com", "m.youtube.com", "www.youtube.com", "youtubei.googleapis.com",
           "www.youtube-nocookie.com", "youtube.googleapis.com")


def _is(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def _google(host: str) -> bool:
    # google.nl, www.google.com, google.co.uk ...; not mail.google.com or docs.google.com
    labels = host.split(".")
    if labels[0] == "www":
        labels = labels[1:]
    return len(labels) >= 2 and labels[0] == "google"


class SafeSearch:
    def __init__(self, engine: EngineAddon) -> None:
        self.engine = engine

    def request(self, flow: http.HTTPFlow) -> None:
        verdict = flow.metadata.get(META)
        if flow.response is not None or not verdict or verdict["action"] != "allow":
            return
        engine = self.engine.engine
        zone = engine.policy.zones.get(str(verdict["zone"])) if engine else None
        if zone is None or not zone.safesearch:
            return
        req = flow.request
        host = flow.metadata.get(HOST) or req.pretty_host.lower().rstrip(".")
        if host in YOUTUBE or _is(host, "youtube.com"):
            req.headers["YouTube-Restrict"] = "Strict"
        elif _google(host) and req.path.startswith(("/search", "/images", "/webhp", "/complete")):
            req.query["safe"] = "active"
        elif _is(host, "bing.com") and req.path.startswith(("/search", "/images", "/videos")):
            req.query["adlt"] = "strict"
        elif _is(host, "duckduckgo.com"):
            req.query["kp"] = "1"

"""What the school's resolver judges of a DNS question, and the names that are signals, not sites.

- A question for `_sip._tls.example.com` (SRV, TXT and other service labels) is about
  `example.com`: leading underscore labels are dropped before the name is judged.
- Some names are how a network tells devices to keep to its own resolver; a school network gives
  these answers whatever the policy says:
  - `use-application-dns.net`: NXDOMAIN tells Firefox not to switch on DNS-over-HTTPS by itself;
  - `mask.icloud.com`, `mask-h2.icloud.com`: NXDOMAIN tells Apple devices that iCloud Private
    Relay is not available on this network, so their traffic stays visible to the filter;
  - `_dns.resolver.arpa` (Discovery of Designated Resolvers, RFC 9462): no data, so clients do
    not upgrade to an encrypted resolver that the gateway cannot see.
"""

from __future__ import annotations

NXDOMAIN, NODATA = "nxdomain", "nodata"
SIGNALS: dict[str, str] = {
    "use-application-dns.net": NXDOMAIN,
    "mask.icloud.com": NXDOMAIN,
    "mask-h2.icloud.com": NXDOMAIN,
    "_dns.resolver.arpa": NODATA,
}


def signal(name: str) -> str | None:
    """NXDOMAIN or NODATA when the question is one of the network's signals, else None."""
    return SIGNALS.get(name.lower().rstrip("."))


def judged_name(name: str) -> str:
    """The name a question is decided on: without leading service labels (`_xmpp._tcp.`)."""
    labels = name.rstrip(".").split(".")
    while len(labels) > 1 and labels[0].startswith("_"):
        labels.pop(0)
    return ".".join(labels)

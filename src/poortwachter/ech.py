"""Encrypted Client Hello as the gateway meets it: the outer names (ECH fronts) that hide a real
destination, read from the ECH configurations that DNS HTTPS and SVCB records carry.

An ECHConfigList (draft-ietf-tls-esni, section 4) is a length-prefixed list of ECHConfig
structures; each names a `public_name`, the host the client puts in the outer, visible SNI. A TLS
connection whose SNI is such a name and whose ClientHello carries the ECH extension goes somewhere
the gateway cannot see. Browsers also send a GREASE ECH extension on ordinary connections (with the
real name in the SNI), so the extension alone proves nothing: only the pair does.

Input comes from the network: every length is checked, nothing is trusted, and a malformed list
yields the names read before the fault (never an exception the caller has to expect).
"""

from __future__ import annotations

ECH_EXTENSION = 0xFE0D          # the TLS extension type, and the ECHConfig version it carries
MAX_FRONTS_PER_LIST = 16        # a list with more configurations than this is not a real one


def public_names(config_list: bytes) -> list[str]:
    """The public names of the ECHConfig entries of one ECHConfigList, lower-case, in order.
    Configurations of unknown versions are skipped, as a client would skip them."""
    names: list[str] = []
    if len(config_list) < 2:
        return names
    total = int.from_bytes(config_list[:2], "big")
    body = config_list[2:2 + total]
    offset = 0
    while offset + 4 <= len(body) and len(names) < MAX_FRONTS_PER_LIST:
        version = int.from_bytes(body[offset:offset + 2], "big")
        length = int.from_bytes(body[offset + 2:offset + 4], "big")
        contents = body[offset + 4:offset + 4 + length]
        offset += 4 + length
        if len(contents) != length:
            break                                    # cut short: nothing more can be read
        if version != ECH_EXTENSION:
            continue
        name = _public_name(contents)
        if name:
            names.append(name)
    return names


def _public_name(contents: bytes) -> str | None:
    """ECHConfigContents: config_id(1) kem_id(2) public_key<2> cipher_suites<2>
    maximum_name_length(1) public_name<1> extensions<2>."""
    at = 3
    for _ in range(2):                               # public_key, cipher_suites
        if at + 2 > len(contents):
            return None
        at += 2 + int.from_bytes(contents[at:at + 2], "big")
    at += 1                                          # maximum_name_length
    if at + 1 > len(contents):
        return None
    size = contents[at]
    raw = contents[at + 1:at + 1 + size]
    if size == 0 or len(raw) != size:
        return None
    try:
        name = raw.decode("ascii").lower().rstrip(".")
    except UnicodeDecodeError:
        return None
    if not name or any(not (c.isalnum() or c in "-.") for c in name):
        return None
    return name


def build_config_list(*names: str, public_key: bytes = b"\x00" * 32) -> bytes:
    """An ECHConfigList with one configuration per public name (X25519, HKDF-SHA256,
    AES-128-GCM). For tests and the benchmark: what a DNS zone of an ECH-enabled CDN publishes."""
    configs = b""
    for i, name in enumerate(names):
        raw = name.encode("ascii")
        contents = (bytes([i & 0xFF]) + (0x0020).to_bytes(2, "big")
                    + len(public_key).to_bytes(2, "big") + public_key
                    + (4).to_bytes(2, "big") + (0x0001).to_bytes(2, "big") + (0x0001).to_bytes(2, "big")
                    + bytes([0]) + bytes([len(raw)]) + raw + (0).to_bytes(2, "big"))
        configs += ECH_EXTENSION.to_bytes(2, "big") + len(contents).to_bytes(2, "big") + contents
    return len(configs).to_bytes(2, "big") + configs


class EchFronts:
    """The ECH fronts the gateway knows: the policy's list plus the public names its resolver found
    in HTTPS and SVCB records. Learnt names are kept for `keep` seconds after they were last seen,
    at most `max_learnt` of them (a hostile zone cannot grow the set without bound)."""

    def __init__(self, keep: float = 86400.0, max_learnt: int = 10_000) -> None:
        self.keep = keep
        self.max_learnt = max_learnt
        self._learnt: dict[str, float] = {}      # name -> monotonic seconds it stops counting

    def __len__(self) -> int:
        """Learnt names held (some may have expired since: they go when the set is full)."""
        return len(self._learnt)

    def learn(self, names: list[str], now: float) -> bool:
        """Remember `names`; True when one of them was not held before."""
        new = False
        for name in names:
            new = self._learnt.pop(name, None) is None or new
            self._learnt[name] = now + self.keep
        if len(self._learnt) > self.max_learnt:
            for name in [n for n, until in self._learnt.items() if until < now]:
                del self._learnt[name]
            while len(self._learnt) > self.max_learnt:
                del self._learnt[next(iter(self._learnt))]
        return new

    def known(self, name: str, configured: frozenset[str], now: float) -> bool:
        if name in configured:
            return True
        until = self._learnt.get(name)
        return until is not None and until >= now

    def learnt(self, now: float) -> list[str]:
        return sorted(n for n, until in self._learnt.items() if until >= now)

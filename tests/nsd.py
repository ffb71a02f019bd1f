"""NSD (Debian's authoritative DNS server) for the tests: its configuration and zone files, so the
resolver tests on loopback (tests/e2e/nsd.py) and in namespaces (tests/netns/authoritative.py)
run the same real server the same way, each starting it where it needs it."""

from __future__ import annotations

from pathlib import Path

NSD = Path("/usr/sbin/nsd")
NSD_CHECKCONF = NSD.with_name("nsd-checkconf")


def zone_file(origin: str, body: str, ttl: int = 3600, ns_address: str = "127.0.0.1") -> str:
    """A zone file: SOA and NS for `origin` (without the final dot), then `body` (records
    relative to the origin)."""
    return (f"$ORIGIN {origin}.\n$TTL {ttl}\n"
            f"@ IN SOA ns1.{origin}. hostmaster.{origin}. 1 3600 900 604800 300\n"
            f"@ IN NS ns1.{origin}.\nns1 IN A {ns_address}\n{body.strip()}\n")


def write_config(workdir: Path, listen: list[tuple[str, int]], zones: dict[str, str]) -> Path:
    """nsd.conf and the zone files in `workdir`: NSD in the foreground, no chroot, no user switch,
    no database, answering on each (address, port) of `listen` over UDP and TCP."""
    workdir.mkdir(parents=True, exist_ok=True)
    ipv6 = any(":" in address for address, _ in listen)
    conf = ["server:", *(f"  ip-address: {address}@{port}" for address, port in listen),
            '  username: ""', '  chroot: ""', '  database: ""', f'  zonesdir: "{workdir}"',
            f'  pidfile: "{workdir / "nsd.pid"}"', f'  xfrdfile: "{workdir / "xfrd.state"}"',
            f'  zonelistfile: "{workdir / "zone.list"}"', f'  xfrdir: "{workdir}"',
            f'  logfile: "{workdir / "nsd.log"}"', "  server-count: 1", f"  do-ip6: {'yes' if ipv6 else 'no'}",
            "  verbosity: 1", "remote-control:", "  control-enable: no"]
    for name, text in zones.items():
        (workdir / f"{name}.zone").write_text(text, encoding="utf-8")
        conf += ["zone:", f"  name: {name}", f"  zonefile: {name}.zone"]
    path = workdir / "nsd.conf"
    path.write_text("\n".join(conf) + "\n", encoding="utf-8")
    return path

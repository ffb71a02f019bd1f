"""The firewall generated from the policy (`poortwachter nftables`): the client networks, the
redirects and exactly the policy's services, so that the firewall and the gateway cannot disagree.
(Loading the rules into a real kernel is tests/netns/test_gate.py.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from poortwachter.firewall import ruleset
from poortwachter.policy.load import load_policy

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "policy" / "default.yaml"

POLICY = """\
school: "Firewallschool"
settings: {{unknown_clients: {unknown}}}
zones:
  klas: {{kind: classroom, role: pupil, cidrs: ["10.20.0.0/16", "fd00:20::/48"]}}
  lab: {{kind: classroom, role: pupil, cidrs: ["10.21.0.0/24"]}}
  personeel: {{kind: staff, role: staff, cidrs: ["10.40.0.0/16"]}}
timetable:
  schedules: {{normaal: [{{name: les, start: "08:00", end: "16:00", kind: lesson}}]}}
  weekdays: {{monday: normaal}}
services:
  - name: ssh-schoolserver
    source: "004 art. 2"
    zones: [staff]
    protocol: tcp
    ports: [22]
    to: ["10.99.0.22/32"]
  - name: teams-media
    source: "004 art. 2"
    zones: [classroom]
    protocol: udp
    ports: ["3478-3481"]
    to: ["52.112.0.0/14", "2603:1063::/38"]
  - name: alleen-namen
    source: "004 art. 2"
    zones: [klas]
    protocol: tcp
    ports: [993]
    hosts: [mail.school.nl]
  - name: ntp-overal
    source: "004 art. 2"
    zones: [personeel]
    protocol: udp
    ports: [123]
    to: ["0.0.0.0/0"]
dns: {{block_address: 10.99.0.80}}
rules: []
default: allow
"""


def _rules(tmp_path: Path, unknown: str = "guest") -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(unknown=unknown), encoding="utf-8")
    return ruleset(load_policy(path))


def _chain(text: str, name: str) -> list[str]:
    body = text.split(f"chain {name} {{", 1)[1].split("\n\t}", 1)[0].replace("\\\n", " ")
    return [" ".join(line.split()) for line in body.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_the_shipped_ruleset_is_the_one_the_default_policy_generates() -> None:
    """deploy/nftables/poortwachter.nft is an output, never edited: regenerate it with
    `poortwachter nftables --policy policy/default.yaml -o deploy/nftables/poortwachter.nft`."""
    shipped = (REPO / "deploy" / "nftables" / "poortwachter.nft").read_text(encoding="utf-8")
    assert shipped == ruleset(load_policy(DEFAULT))


def test_services_open_exactly_their_ports_from_the_networks_of_their_zones(tmp_path: Path) -> None:
    services = _chain(_rules(tmp_path), "services")
    assert services == [
        # by zone kind: staff is personeel
        "ip saddr { 10.40.0.0/16 } ip daddr { 10.99.0.22/32 } tcp dport { 22 } counter accept",
        # by kind classroom: both classroom zones, per family (the IPv6 one only has klas)
        "ip saddr { 10.20.0.0/16, 10.21.0.0/24 } ip daddr { 52.112.0.0/14 } udp dport { 3478-3481 } counter accept",
        "ip6 saddr { fd00:20::/48 } ip6 daddr { 2603:1063::/38 } udp dport { 3478-3481 } counter accept",
        # a service of names only is the proxy's: the firewall cannot follow names, it opens nothing
        # anywhere: no destination match at all
        "ip saddr { 10.40.0.0/16 } udp dport { 123 } counter accept",
    ]


def test_everything_else_from_a_client_network_is_refused(tmp_path: Path) -> None:
    """004 art. 12: forwarded traffic of the client VLANs ends in a reject after the services."""
    from_clients = _chain(_rules(tmp_path), "from_clients")
    assert from_clients[0] == "ct state established,related accept"
    assert from_clients[-2:] == ["jump services", "counter reject with icmpx admin-prohibited"]
    assert "udp dport 443 counter reject" in from_clients           # QUIC
    assert "tcp dport 853 counter reject with tcp reset" in from_clients   # DNS over TLS


def test_client_networks_redirects_and_block_page_come_from_the_policy(tmp_path: Path) -> None:
    text = _rules(tmp_path)
    assert re.search(r"set clients4 \{[^}]*elements = \{ 10\.20\.0\.0/16, 10\.21\.0\.0/24, 10\.40\.0\.0/16 \}", text)
    assert re.search(r"set clients6 \{[^}]*elements = \{ fd00:20::/48 \}", text)
    assert re.search(r"set blockpage4 \{[^}]*elements = \{ 10\.99\.0\.80/32 \}", text)
    prerouting = _chain(text, "prerouting")
    dns = [line for line in prerouting if "th dport 53" in line]
    assert len(dns) == 2 and all("map @worker_dns_port" in line for line in dns)
    assert any(line.startswith("ip daddr @blockpage4 tcp dport { 80, 443 }") for line in prerouting)
    # guests: unknown devices on a client VLAN are redirected too (they get the guest rules)
    assert all(line.startswith("meta nfproto") for line in dns)


def test_with_unknown_clients_refused_only_the_zones_networks_are_redirected(tmp_path: Path) -> None:
    prerouting = _chain(_rules(tmp_path, unknown="refuse"), "prerouting")
    web = [line for line in prerouting if "tcp dport { 80, 443 }" in line and "blockpage" not in line]
    assert [line.split(" tcp dport")[0] for line in web] == ["ip saddr @clients4", "ip6 saddr @clients6"]


def test_the_cli_writes_the_ruleset_and_refuses_a_bad_policy(tmp_path: Path) -> None:
    out = tmp_path / "poortwachter.nft"
    done = subprocess.run([sys.executable, "-m", "poortwachter.cli", "nftables", "--policy", str(DEFAULT),
                           "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8") == ruleset(load_policy(DEFAULT))
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEFAULT.read_text(encoding="utf-8").replace('ports: ["3478-3481"]', 'ports: ["3481-3478"]'))
    done = subprocess.run([sys.executable, "-m", "poortwachter.cli", "nftables", "--policy", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "services[0].ports[0]" in done.stderr and "bad.yaml:" in done.stderr

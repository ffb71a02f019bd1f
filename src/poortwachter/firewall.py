"""The school's firewall, generated from the policy: `poortwachter nftables --policy FILE`.

The gateway's web gate and the firewall around it must never disagree, so the firewall is not
written by hand: the client networks come from the policy's zones, the redirects from its
resolver and block-page settings, and what a client network may send besides the web from its
`services`, one accept rule per service and address family. Everything else a client network
sends is refused (an ICMP "administratively prohibited", so applications fail at once).

What stays site-specific (interfaces, management networks, the workers' ports) comes from the
defines of site.nft, which includes the generated file (deploy/nftables/site.nft shows them).
Pure: a policy in, the ruleset text out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .policy.model import Policy, Service

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SITE_DEFINES = (
    ("pw_client_ifaces", 'interfaces of the client VLANs (pupils, staff, guests)   { "vlan20", "vlan30" }'),
    ("pw_pupil_ifaces", 'the pupils\' VLANs among them                              { "vlan20" }'),
    ("pw_mgmt_prefixes", "management networks, IPv4 (pupils never reach them)       { 10.99.0.0/24 }"),
    ("pw_mgmt_prefixes6", "management networks, IPv6; none: { 100::/64 }"),
    ("pw_proxy_ports", "the gateway workers' proxy ports (explicit proxy clients)  { 8080, 8081 }"),
    ("pw_worker_ports", "hash bucket 0-999 of the client address -> worker proxy port:\n"
                        "#                         one worker { 0-999 : 8080 }, two { 0-499 : 8080, 500-999 : 8081 }"),
    ("pw_worker_dns_ports", "the same buckets -> the worker's resolver port (`run --dns`):\n"
                            "#                         one worker { 0-999 : 5300 }, two { 0-499 : 5300, 500-999 : 5301 }"),
    ("pw_gateway_services", "TCP/UDP ports of the gateway itself clients may reach     { 67, 443 }\n"
                            "#                         (DHCP when the gateway serves it, the console's HTTPS)"),
)

HEADER = """\
# Poortwachter's firewall for {school}
# GENERATED from the policy by `poortwachter nftables --policy FILE`: do not edit; change the
# policy and generate again. One table of its own (inet: IPv4 and IPv6), next to the school's own
# firewall: a drop or reject here is final, an accept here only ends this table's say.
#
# Include it after the site's defines (deploy/nftables/site.nft shows them):
{defines}
#
# Check: nft -c -f site.nft. Load: nft -f site.nft (or include site.nft from /etc/nftables.conf).
"""


def ruleset(policy: Policy) -> str:
    """The nftables ruleset that goes with this policy."""
    nets = _zone_networks(policy)
    clients = [net for networks in nets.values() for net in networks]
    guests_too = policy.settings.unknown_clients == "guest"
    defines = "\n".join(f"#   {name:<21} {text}" for name, text in SITE_DEFINES)
    out = [HEADER.format(school=policy.school, defines=defines)]
    out.append("table inet poortwachter\ndelete table inet poortwachter\n\ntable inet poortwachter {")
    out.append(_set("clients4", "ipv4_addr", [n for n in clients if n.version == 4],
                    "every zone's IPv4 networks (policy: zones)"))
    out.append(_set("clients6", "ipv6_addr", [n for n in clients if n.version == 6],
                    "every zone's IPv6 networks"))
    dns = policy.dns
    out.append(_set("blockpage4", "ipv4_addr", [ipaddress.ip_network(dns.block_address)] if dns.block_address else [],
                    "the address blocked names resolve to (policy: dns.block_address)"))
    out.append(_set("blockpage6", "ipv6_addr",
                    [ipaddress.ip_network(dns.block_address6)] if dns.block_address6 else [],
                    "the same for IPv6 (dns.block_address6)"))
    out.append(MAPS)
    out.append(GUARD)
    # Unknown clients on a client VLAN get the guest rules (settings.unknown_clients: guest), so
    # their web and DNS go to the gateway too; with `refuse` only the zones' own networks do.
    out.append(PREROUTING.format(from4="meta nfproto ipv4 " if guests_too else "ip saddr @clients4 ",
                                 from6="meta nfproto ipv6 " if guests_too else "ip6 saddr @clients6 "))
    out.append(FORWARD)
    out.append(_services(policy.services, policy, nets))
    out.append(INPUT)
    out.append("}\n")
    return "\n".join(out)


def _zone_networks(policy: Policy) -> dict[str, list[IPNetwork]]:
    return {name: [ipaddress.ip_network(c, strict=False) for c in zone.cidrs] for name, zone in policy.zones.items()}


def _set(name: str, kind: str, networks: list[IPNetwork], comment: str) -> str:
    elements = f"\n\t\telements = {{ {', '.join(map(str, _collapse(networks)))} }}" if networks else ""
    return f"\t# {comment}\n\tset {name} {{\n\t\ttype {kind}\n\t\tflags interval{elements}\n\t}}\n"


def _collapse(networks: Iterable[IPNetwork]) -> list[IPNetwork]:
    networks = list(networks)
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]


def _services(services: list[Service], policy: Policy, nets: dict[str, list[IPNetwork]]) -> str:
    lines = ["\t# What a client network may send besides the web: the policy's `services`, nothing else."]
    lines.append("\tchain services {")
    for service in services:
        sources = _collapse(net for zone, zone_def in policy.zones.items()
                            if zone in service.zones or zone_def.kind.value in service.zones for net in nets[zone])
        destinations = _collapse(ipaddress.ip_network(n, strict=False) for n in service.to)
        ports = ", ".join(str(p) for p in service.ports)
        lines.append(f"\t\t# {service.name}: {_comment(service.source)}")
        written = False
        for version, ip in ((4, "ip"), (6, "ip6")):
            src = [n for n in sources if n.version == version]
            dst = [n for n in destinations if n.version == version]
            if not src or not dst:
                continue
            whole = dst == [ipaddress.ip_network("0.0.0.0/0" if version == 4 else "::/0")]
            to = "" if whole else f" {ip} daddr {{ {', '.join(map(str, dst))} }}"
            lines.append(f"\t\t{ip} saddr {{ {', '.join(map(str, src))} }}{to} {service.protocol} dport "
                         f"{{ {ports} }} counter accept")
            written = True
        if not written:
            lines.append("\t\t#   (nothing for the firewall: no address of this family, or names only: the proxy's)")
    lines.append("\t}\n")
    return "\n".join(lines)


def _comment(text: str) -> str:
    return " ".join(text.split()).replace("\\", "/")


MAPS = """\
\t# A client keeps its worker (jhash of its address, fixed seed: the same after every reload),
\t# for its web and its DNS alike, so the resolver that answered it is the proxy that checks it.
\t# The key type is any 32-bit integer, spelled the one way nft 1.0 accepts for a hash bucket.
\tmap worker_port {
\t\ttypeof numgen inc mod 1000 : tcp dport
\t\tflags interval
\t\telements = $pw_worker_ports
\t}

\tmap worker_dns_port {
\t\ttypeof numgen inc mod 1000 : tcp dport
\t\tflags interval
\t\telements = $pw_worker_dns_ports
\t}
"""

GUARD = """\
\t# Before any address translation: what no client VLAN address may ever reach, and no address a
\t# client may pretend to have (reverse path: a source that would not be routed back here).
\tchain guard {
\t\ttype filter hook prerouting priority mangle; policy accept;
\t\tiifname $pw_client_ifaces fib saddr . iif oif missing counter drop
\t\tiifname != $pw_pupil_ifaces return
\t\tmeta l4proto { tcp, udp } th dport 53 return               # DNS: every question goes to the gateway below
\t\tip daddr $pw_mgmt_prefixes counter drop      # pupils never reach management networks, not even via the proxy
\t\tip6 daddr $pw_mgmt_prefixes6 counter drop
\t}
"""

PREROUTING = """\
\tchain prerouting {{
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tiifname != $pw_client_ifaces return
\t\t# Every DNS question of a client is answered by the school's resolver on the gateway, whatever
\t\t# resolver the device picked: the policy decides every name.
\t\t{from4}meta l4proto {{ tcp, udp }} th dport 53 counter \\
\t\t\tredirect to :jhash ip saddr mod 1000 seed 0x5057 map @worker_dns_port
\t\t{from6}meta l4proto {{ tcp, udp }} th dport 53 counter \\
\t\t\tredirect to :jhash ip6 saddr mod 1000 seed 0x5057 map @worker_dns_port
\t\t# A blocked name resolves to the block page's address: its web goes to the workers too.
\t\tip daddr @blockpage4 tcp dport {{ 80, 443 }} counter redirect to :jhash ip saddr mod 1000 seed 0x5057 map @worker_port
\t\tip6 daddr @blockpage6 tcp dport {{ 80, 443 }} counter redirect to :jhash ip6 saddr mod 1000 seed 0x5057 map @worker_port
\t\t# The web, to the gateway's workers (mitmproxy --mode transparent reads the original target).
\t\tfib daddr type local return
\t\t{from4}tcp dport {{ 80, 443 }} counter \\
\t\t\tredirect to :jhash ip saddr mod 1000 seed 0x5057 map @worker_port
\t\t{from6}tcp dport {{ 80, 443 }} counter \\
\t\t\tredirect to :jhash ip6 saddr mod 1000 seed 0x5057 map @worker_port
\t}}
"""

FORWARD = """\
\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tiifname $pw_client_ifaces jump from_clients
\t}

\t# Forwarded traffic of the client VLANs: replies, the policy's services, and nothing else. The
\t# web (TCP 80/443) and DNS never get here: the gateway answers them itself (prerouting).
\tchain from_clients {
\t\tct state established,related accept
\t\t# QUIC (HTTP/3) and DNS over TLS or QUIC: refused at once, so browsers fall back to TCP 443
\t\t# (the gateway's) and resolvers to plain DNS (the gateway's).
\t\tudp dport 443 counter reject
\t\ttcp dport 853 counter reject with tcp reset
\t\tudp dport 853 counter reject
\t\tjump services
\t\t# Everything else (VPNs such as WireGuard or OpenVPN, SSH, other ports): refused.
\t\tcounter reject with icmpx admin-prohibited
\t}
"""

INPUT = """\
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tiifname $pw_client_ifaces jump clients_to_gateway
\t}

\t# The gateway itself, seen from the client VLANs: the workers, the listed services, nothing else
\t# (not SSH, the console's own port or the metrics).
\tchain clients_to_gateway {
\t\tct state established,related accept
\t\tct status dnat accept                                       # redirected web traffic and DNS
\t\ttcp dport $pw_proxy_ports accept                            # explicit proxy (PAC, WPAD, MDM)
\t\tmeta l4proto { tcp, udp } th dport $pw_gateway_services accept
\t\tmeta l4proto { icmp, ipv6-icmp } accept                     # ping, path MTU, neighbour discovery
\t\tcounter drop
\t}
"""

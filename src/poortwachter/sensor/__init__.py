"""The network sensor (`poortwachter sensor`): what happens on a client VLAN, at zone level.

Reglement 004 art. 12 and 13 forbid disturbing the network, planting viruses, hacking and
excessive downloading. The sensor sniffs a client VLAN (a mirror port or the gateway's VLAN
interface) and counts ARP spoofing, rogue DHCP servers, port scans and sweeps, and traffic per
zone; a client that downloads too much gets a download limit on the gateway when the policy
says so. Metrics and log lines carry zones and kinds, never an address or a MAC.

- observations.py  what capture hands to the detectors (small tuples, no scapy)
- capture.py       scapy: the socket, its BPF filter, frames -> observations
- zones.py         address -> zone name, through the policy's longest-prefix lookup
- arp.py, dhcp.py, scans.py, volume.py   the detectors: pure, with an injectable time
- limits.py        download limits through the store, kept and retried when it is away
- metrics.py       the Prometheus metrics and their HTTP server
- service.py       the running sensor: dispatch, policy reloads, housekeeping, stop
- cli.py           `poortwachter sensor`
"""

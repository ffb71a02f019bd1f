"""The policy's `sensor:` section: validated like the rest (unknown fields, lines), defaults without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from poortwachter.policy.load import PolicyError, load_policy, parse_policy
from poortwachter.policy.model import Sensor

from .helpers import POLICY

REPO = Path(__file__).resolve().parents[3]


def problems(sensor_yaml: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(POLICY + sensor_yaml, "p.yaml")
    return [str(p) for p in info.value.problems]


def line_of(needle: str, sensor_yaml: str) -> int:
    return next(i for i, line in enumerate((POLICY + sensor_yaml).splitlines(), 1) if needle in line)


def test_the_default_policy_has_a_sensor_section_citing_004() -> None:
    sensor = load_policy(REPO / "policy" / "default.yaml").sensor
    assert sensor is not None
    assert sensor.source.startswith("004 art. 12") and sensor.excessive_download.source.startswith("004 art. 13")
    assert sensor.excessive_download.action == "alert"


def test_without_a_section_the_defaults_apply() -> None:
    policy = parse_policy(POLICY, "p.yaml")
    assert policy.sensor is None
    defaults = Sensor()
    assert (defaults.scans.window, defaults.scans.ports, defaults.scans.hosts) == (60, 25, 25)
    assert defaults.dhcp_servers is None and defaults.gateways == []


def test_macs_and_addresses_are_normalised() -> None:
    policy = parse_policy(POLICY + 'sensor:\n  gateways: [{address: 10.20.0.1, mac: "02-00-5E-00-00-01"}]\n'
                                   '  dhcp_servers: ["fd00:20:0::1", "AA:BB:CC:DD:EE:FF"]\n', "p.yaml")
    assert policy.sensor is not None
    assert policy.sensor.gateways[0].mac == "02:00:5e:00:00:01"
    assert policy.sensor.dhcp_servers == ["fd00:20::1", "aa:bb:cc:dd:ee:ff"]


@pytest.mark.parametrize(("section", "needle", "path", "message"), [
    ("sensor:\n  scan: {window: 60}\n", "scan:", "sensor.scan", "Extra inputs are not permitted"),
    ("sensor:\n  scans: {window: 60, port: 3}\n", "port: 3", "sensor.scans.port", "Extra inputs are not permitted"),
    ('sensor:\n  gateways:\n    - {address: 10.20.0.1, mac: "02:00:5e:00:01"}\n', "mac:", "sensor.gateways[0].mac",
     "is not a MAC address"),
    ("sensor:\n  gateways: [{address: \"fd00:20::1\", mac: \"02:00:5e:00:00:01\"}]\n", "gateways", "sensor.gateways[0].address",
     "ARP spoofing is an IPv4 matter"),
    ("sensor:\n  dhcp_servers: [10.0.0.2, dhcp.school.nl]\n", "dhcp_servers", "sensor.dhcp_servers[1]",
     "is not an IP address"),
    ("sensor:\n  excessive_download:\n    action: block\n", "action: block", "sensor.excessive_download.action",
     "Input should be 'alert' or 'limit'"),
    ("sensor:\n  excessive_download:\n    bytes: 0\n", "bytes: 0", "sensor.excessive_download.bytes",
     "greater than or equal to 1"),
])
def test_mistakes_name_file_line_and_path(section: str, needle: str, path: str, message: str) -> None:
    [problem] = problems(section)
    assert problem.startswith(f"p.yaml:{line_of(needle, section)}: {path}: ")
    assert message in problem


def test_one_mac_per_gateway_address() -> None:
    section = ('sensor:\n  gateways:\n    - {address: 10.20.0.1, mac: "02:00:5e:00:00:01"}\n'
               '    - {address: 10.20.0.1, mac: "02:00:5e:00:00:02"}\n')
    [problem] = problems(section)
    assert problem == f"p.yaml:{line_of('"02:00:5e:00:00:02"', section)}: sensor.gateways[1].address: " \
                      "gateway listed twice (één MAC per gateway-adres)"

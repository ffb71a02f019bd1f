"""Shared bits of the sensor's unit tests: settings from YAML-like dicts, a small school policy."""

from __future__ import annotations

from typing import Any

from poortwachter.policy.load import parse_policy
from poortwachter.policy.model import Policy, Sensor

POLICY = """\
school: "Sensorschool"
zones:
  klas:
    kind: classroom
    role: pupil
    cidrs: ["10.20.0.0/16", "fd00:20::/48"]
  examen:
    kind: exam_room
    role: pupil
    cidrs: ["10.20.99.0/24"]
  personeel:
    kind: staff
    role: staff
    cidrs: ["10.40.0.0/16"]
timetable:
  schedules:
    normaal:
      - {name: les, start: "08:30", end: "09:20", kind: lesson}
  weekdays: {monday: normaal}
rules: []
default: allow
"""


def settings(**sensor: Any) -> Sensor:
    return Sensor.model_validate(sensor)


def policy(sensor_yaml: str = "") -> Policy:
    return parse_policy(POLICY + sensor_yaml, "sensor.yaml")


def zone_of(address: str) -> str | None:
    """Stand-in for Zones.of in the detector tests (Zones itself is tested on a real policy)."""
    if address.startswith("10.20.99."):
        return "examen"
    if address.startswith("10.20."):
        return "klas"
    if address.startswith("10.40."):
        return "personeel"
    return None

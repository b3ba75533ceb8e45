"""Battery projections, policy and telemetry (hardware-agnostic; readers live in ``hw``)."""

from agent.power.battery_policy import CRITICAL, OK, WARN, Admission, BatteryPolicy, BatteryVerdict
from agent.power.battery_telemetry import power_telemetry
from agent.power.projection import PowerProjection, PowerProjector

__all__ = [
    "CRITICAL",
    "OK",
    "WARN",
    "Admission",
    "BatteryPolicy",
    "BatteryVerdict",
    "PowerProjection",
    "PowerProjector",
    "power_telemetry",
]

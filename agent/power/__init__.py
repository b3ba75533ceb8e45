"""Battery projections, policy and telemetry (hardware-agnostic; readers live in ``hw``)."""

from agent.power.policy import CRITICAL, OK, WARN, Admission, BatteryPolicy, BatteryVerdict
from agent.power.projection import PowerProjection, PowerProjector
from agent.power.telemetry import power_telemetry

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

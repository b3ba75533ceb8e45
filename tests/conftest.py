"""Shared pytest options and fixtures for every suite.

``--hw`` selects the hardware the contract suites run against: ``sim`` (the default, the
shipped simulators) or ``pi`` (the real drivers on a Raspberry Pi; tests skip cleanly what
cannot be loaded there).
"""

from __future__ import annotations

import pytest

HW_KINDS = ("sim", "pi")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--hw {sim,pi}``."""
    parser.addoption(
        "--hw",
        action="store",
        default="sim",
        choices=HW_KINDS,
        help="hardware for the contract suites: sim (simulators, default) or pi (real drivers)",
    )


@pytest.fixture(scope="session")
def hw_kind(request: pytest.FixtureRequest) -> str:
    """The hardware kind chosen with ``--hw`` (``sim`` or ``pi``)."""
    return str(request.config.getoption("--hw"))

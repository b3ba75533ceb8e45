"""Retention periods in the matter catalogue: the shipped catalogue stays valid, a matter's
own period overrides the default, and a bad period stops loading with the field named."""

from __future__ import annotations

import pytest

from agent.matters.catalogue import DEFAULT_RETENTION_DAYS, SHIPPED_CATALOGUE, MatterCatalogue
from hw.errors import MatterError


def test_shipped_catalogue_is_valid_and_states_its_retention():
    """The shipped file loads; its default period is declared, and applies to every matter
    that has none and to recordings without a matter or with an unknown code."""
    cat = MatterCatalogue.load()
    assert "retention_days" in SHIPPED_CATALOGUE.read_text(encoding="utf-8")
    assert cat.default_retention_days == DEFAULT_RETENTION_DAYS == 180
    for m in cat:
        assert cat.retention_days(m.code) == (m.retention_days or 180)
    assert cat.retention_days(None) == cat.retention_days("NOSUCH") == 180


def _with(head: str, matter_extra: str = "") -> str:
    text = SHIPPED_CATALOGUE.read_text(encoding="utf-8").replace("retention_days = 180\n", head)
    return text.replace('code = "XCJC"\n', f'code = "XCJC"\n{matter_extra}', 1)


def test_a_matters_own_period_overrides_the_default():
    cat = MatterCatalogue.from_toml(_with("retention_days = 30\n", "retention_days = 3650\n"))
    assert cat.retention_days("xcjc") == 3650
    assert cat.retention_days("ZJSD") == 30
    assert MatterCatalogue.from_toml(_with("")).default_retention_days == DEFAULT_RETENTION_DAYS


@pytest.mark.parametrize("value", ["0", "-5", "1.5", '"365"', "true", "40000"])
def test_a_bad_period_names_the_field(value):
    with pytest.raises(MatterError, match="retention_days"):
        MatterCatalogue.from_toml(_with(f"retention_days = {value}\n"))
    with pytest.raises(MatterError, match=r"XCJC.*retention_days"):
        MatterCatalogue.from_toml(_with("", f"retention_days = {value}\n"))

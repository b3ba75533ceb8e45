"""The matter catalogue: the shipped recording list, agency extensions, and malformed files."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.matters import CARRIERS, SHIPPED_CATALOGUE, MatterCatalogue, QuickList
from agent.matters.catalogue import _parse
from hw.errors import BodycamError, MatterError

# The seed's recording list (行政执法音像记录清单), row by row: category, matter, carriers.
SEED_ROWS = [
    ("行政处罚环节", "现场检查", {"body"}),
    ("行政处罚环节", "调查取证", {"body"}),
    ("行政处罚环节", "先行登记保存", {"body"}),
    ("行政处罚环节", "陈述、申辩", {"body"}),
    ("行政处罚环节", "简易处罚程序", {"body", "handheld"}),
    ("行政处罚环节", "对责令改正情况的现场核查", {"stills", "body"}),
    ("行政处罚环节", "当事人不配合调查的", {"body"}),
    ("行政强制环节", "封存的现场执行", {"stills", "body"}),
    ("行政强制环节", "陈述申辩", {"body"}),
    ("行政检查环节", "双随机抽取过程", {"video", "surveillance"}),
    ("送达环节", "直接送达", {"body"}),
    ("送达环节", "留置送达过程", {"body", "video"}),
    ("送达环节", "邮寄送达", {"stills", "video", "body"}),
    ("送达环节", "公告、送达", {"body"}),
]

MINIMAL = """
format = 1
[categories.penalty]
zh = "行政处罚环节"
en = "Administrative penalty"

[[matter]]
code = "XCJC"
category = "penalty"
name_zh = "现场检查"
name_en = "On-site inspection"
carriers = ["body"]
place_zh = "检查场所现场"
place_en = "The inspected site"
record_zh = "全过程记录"
record_en = "The whole process"
checklist = [
  { code = "identity", zh = "表明身份", en = "Identity shown", required = true },
  { code = "refusal", zh = "当事人拒绝检查", en = "Refusal", required = false },
]
"""


def _write(tmp_path: Path, text: str, name: str = "matters.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(MatterError) as info:
        MatterCatalogue.load(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: "), msg
    return msg


# --- the shipped catalogue ------------------------------------------------------------------
def test_shipped_catalogue_holds_the_seeds_fourteen_matters_in_order() -> None:
    """The shipped file is the seed's table: 14 matters, its Chinese names, categories, carriers."""
    cat = MatterCatalogue.load()
    assert len(cat) == 14
    assert cat.sources == ("config/matters.toml",)
    for matter, (category_zh, name_zh, carriers) in zip(cat, SEED_ROWS, strict=True):
        assert matter.name_zh == name_zh
        assert cat.category(matter.category).zh == category_zh
        assert set(matter.carriers) == carriers
        assert matter.name_en and matter.place_zh and matter.record_zh and matter.required_items


def test_shipped_codes_follow_the_documented_scheme() -> None:
    """Codes are unique upper-case ASCII; the three the reference profile uses are present."""
    cat = MatterCatalogue.load()
    assert len(set(cat.codes)) == 14
    assert all(re.fullmatch(r"[A-Z][A-Z0-9]{1,11}", c) for c in cat.codes)
    assert cat.get("XCJC").name_zh == "现场检查"
    assert cat.get("DCQZ").name_zh == "调查取证"
    assert cat.get("ZJSD").name_zh == "直接送达"
    assert cat.get("CSSB").category == "penalty"
    assert cat.get("QZCSSB").category == "coercion"  # the same name under 行政强制环节


def test_reference_profile_quick_list_is_valid() -> None:
    """The reference Pi profile's quick list names shipped matters."""
    profile = Path(SHIPPED_CATALOGUE).parent / "profiles" / "reference-pi.toml"
    if not profile.exists():
        pytest.skip("reference profile not in this tree")
    quick = tomllib.loads(profile.read_text())["matters"]["quick_list"]
    assert QuickList(quick, MatterCatalogue.load()).codes == tuple(quick)


def test_sealing_checklist_has_what_the_issue_names() -> None:
    """封存的现场执行 requires identity shown, rights read and items counted."""
    sealing = MatterCatalogue.load().get("FCZX")
    assert {"identity", "rights_read", "items_counted"} <= set(sealing.required_items)
    assert sealing.item("items_counted") is not None
    assert sealing.item("items_counted").zh == "封存的资料和物品的清点情况"  # type: ignore[union-attr]


def test_lookup_gives_the_manifest_entry() -> None:
    """lookup() returns the fields manifests carry, plus the internal checklist codes."""
    entry = MatterCatalogue.load().lookup("xcjc ")
    assert entry["code"] == "XCJC"
    assert entry["name_zh"] == "现场检查"
    assert entry["category"] == "penalty"
    assert "refusal" in entry["checklist_codes"]
    assert "refusal" not in entry["required_items"]  # only when the party refuses
    assert set(entry) == {"code", "name_zh", "name_en", "category", "checklist_codes",
                          "required_items"}


def test_lookup_returns_a_fresh_dict_each_time() -> None:
    """Callers may edit the entry (the manifest drops checklist_codes) without harm."""
    cat = MatterCatalogue.load()
    cat.lookup("ZJSD").pop("checklist_codes")
    assert "checklist_codes" in cat.lookup("ZJSD")


def test_unknown_code_names_the_code_and_close_matches() -> None:
    """A mistyped code is rejected with the closest known codes."""
    with pytest.raises(MatterError, match=r"unknown matter code 'XCJD'; close: .*XCJC"):
        MatterCatalogue.load().lookup("XCJD")
    with pytest.raises(MatterError, match=r"'NOPE'; known: XCJC, DCQZ"):
        MatterCatalogue.load().lookup("NOPE")
    assert issubclass(MatterError, BodycamError) and issubclass(MatterError, ValueError)


# --- quick list validation ------------------------------------------------------------------
@pytest.mark.parametrize(("codes", "message"), [
    (["XCJC", "XCJX"], r"matters.quick_list\[1\]: unknown matter code 'XCJX'; close: XCJC"),
    (["XCJC", "xcjc"], r"matters.quick_list\[1\]: 'XCJC' is listed twice \(position 0\)"),
    (["XCJC", 3], r"matters.quick_list\[1\]: expected a matter code, got 3"),
    ([""], r"matters.quick_list\[0\]: expected a matter code"),
])
def test_quick_list_errors_name_the_position(codes: list[object], message: str) -> None:
    """A bad quick list stops start-up with the position and the code."""
    with pytest.raises(MatterError, match=message):
        MatterCatalogue.load().quick_list_valid(codes)


# --- agency extension -----------------------------------------------------------------------
def test_extra_catalogue_overrides_by_code_and_adds(tmp_path: Path) -> None:
    """An agency file replaces a shipped matter whole and adds its own, without code."""
    extra = MINIMAL.replace('name_en = "On-site inspection"', 'name_en = "Site inspection"')
    extra += """
[categories.licensing]
zh = "行政许可环节"
en = "Licensing"

[[matter]]
code = "XKHC"
category = "licensing"
name_zh = "许可现场核查"
name_en = "Licence site check"
carriers = ["body", "stills"]
place_zh = "核查现场"
place_en = "The site"
record_zh = "全过程记录"
record_en = "The whole process"
checklist = [{ code = "identity", zh = "表明身份", en = "Identity shown", required = true }]
"""
    path = _write(tmp_path, extra, "agency.toml")
    cat = MatterCatalogue.load(None, extra=path)
    assert len(cat) == 15
    assert cat.get("XCJC").name_en == "Site inspection"
    assert cat.get("XCJC").required_items == ("identity",)  # replaced whole, not merged
    assert cat.get("XKHC").carriers == ("body", "stills")
    assert cat.category("licensing").zh == "行政许可环节"
    assert cat.category("penalty").zh == "行政处罚环节"
    assert cat.sources == ("config/matters.toml", str(path))


def test_extra_catalogue_may_use_shipped_categories(tmp_path: Path) -> None:
    """The extra file refers to categories the base declares without repeating them."""
    text = MINIMAL.replace('[categories.penalty]\nzh = "行政处罚环节"\nen = "Administrative penalty"\n',
                           "").replace('code = "XCJC"', 'code = "ZZ9"')
    cat = MatterCatalogue.load(extra=_write(tmp_path, text, "agency.toml"))
    assert cat.get("ZZ9").category == "penalty"
    with pytest.raises(MatterError, match=r"category: 'penalty' is not a declared category"):
        MatterCatalogue.load(_write(tmp_path, text, "alone.toml"))


def test_own_catalogue_replaces_the_shipped_one(tmp_path: Path) -> None:
    """``[matters] catalogue`` pointing at an agency file: only its matters exist."""
    cat = MatterCatalogue.load(_write(tmp_path, MINIMAL))
    assert cat.codes == ("XCJC",)
    assert "ZJSD" not in cat


# --- malformed catalogues -------------------------------------------------------------------
def _item_without_code(text: str) -> str:
    return text.replace('{ code = "refusal", zh', "{ zh")


@pytest.mark.parametrize(("mutate", "message"), [
    (_item_without_code, r"matter\[0\] \(XCJC\)\.checklist\[1\]: missing 'code'$"),
    (lambda t: t.replace('name_zh = "现场检查"\n', ""), r"matter\[0\] \(XCJC\): missing 'name_zh'"),
    (lambda t: t.replace('required = false', 'required = "no"'),
     r"matter\[0\] \(XCJC\)\.checklist\[1\] \(refusal\): required: expected true or false, got 'no'"),
    (lambda t: t.replace('required = false', 'required = 0'),
     r"checklist\[1\] \(refusal\): required: expected true or false, got 0"),
    (lambda t: t.replace('carriers = ["body"]', 'carriers = "body"'),
     r"matter\[0\] \(XCJC\): carriers: expected a non-empty list"),
    (lambda t: t.replace('carriers = ["body"]', 'carriers = ["body", "drone"]'),
     r"matter\[0\] \(XCJC\): carriers\[1\]: 'drone' is not one of body, handheld"),
    (lambda t: t.replace('name_en = "On-site inspection"', "name_en = 7"),
     r"matter\[0\] \(XCJC\): name_en: expected a string, got int 7"),
    (lambda t: t.replace('name_en = "On-site inspection"', 'name_en = "  "'),
     r"matter\[0\] \(XCJC\): name_en: must not be empty"),
    (lambda t: t.replace('code = "XCJC"', 'code = "xc-jc"'), r"matter\[0\] \(xc-jc\): code: 'xc-jc' must be"),
    (lambda t: t.replace('code = "XCJC"', "code = 12"), r"matter\[0\]: code: expected a string, got int"),
    (lambda t: t.replace('category = "penalty"', 'category = "tax"'),
     r"matter\[0\] \(XCJC\): category: 'tax' is not a declared category \(penalty\)"),
    (lambda t: t.replace('record_en = "The whole process"', 'record_en = "x"\nnotes = "y"'),
     r"matter\[0\] \(XCJC\): unknown key\(s\) 'notes'"),
    (lambda t: t.replace('code = "refusal"', 'code = "identity"'),
     r"checklist\[1\] \(identity\): duplicate item code within the matter"),
    (lambda t: t.replace('code = "refusal"', 'code = "Refusal!"'),
     r"checklist\[1\]: code: 'Refusal!' must match"),
    (lambda t: t.replace("checklist = [", "checklist = [] \nx = [", 1),
     r"matter\[0\] \(XCJC\): (checklist: expected a non-empty list|unknown key)"),
    (lambda t: t.replace("format = 1", "format = 2"), r"format: expected 1, got 2"),
    (lambda t: t.replace("format = 1", ""), r"format: expected 1, got None"),
    (lambda t: t.split("[[matter]]")[0], r"expected at least one \[\[matter\]\] table"),
    (lambda t: t.replace('en = "Administrative penalty"', 'en = "A"\nfr = "B"'),
     r"categories\.penalty: unknown key\(s\) 'fr'"),
    (lambda t: t.replace("[[matter]]", "[[matters]]"), r"unknown key\(s\) 'matters'"),
    (lambda t: t + '\n[[matter]]\ncode = "X"\n', r"matter\[1\] \(X\): code: 'X' must be 2-12"),
])
def test_malformed_catalogue_names_the_entry_and_field(tmp_path: Path, mutate, message: str) -> None:
    """Every defect is reported with the file, the entry and the field."""
    msg = _error(tmp_path, mutate(MINIMAL))
    assert re.search(message, msg), msg


def test_duplicate_codes_are_rejected_naming_both_entries(tmp_path: Path) -> None:
    """Two entries with one code: the second is named, with the first."""
    text = MINIMAL + "[[matter]]" + MINIMAL.split("[[matter]]")[1]
    assert _error(tmp_path, text).endswith("matter[1] (XCJC): duplicate code (also matter[0])")


def test_bad_toml_is_a_matter_error_with_the_line(tmp_path: Path) -> None:
    """A syntax error names the file and where the parser stopped."""
    msg = _error(tmp_path, MINIMAL.replace('name_zh = "现场检查"', 'name_zh = "现场检查'))
    assert "not valid TOML" in msg and "line" in msg


def test_missing_and_undecodable_files(tmp_path: Path) -> None:
    """An absent or non-UTF-8 catalogue is a MatterError naming the path."""
    with pytest.raises(MatterError, match=r"nope.toml: cannot read the matter catalogue"):
        MatterCatalogue.load(tmp_path / "nope.toml")
    bad = tmp_path / "gbk.toml"
    bad.write_bytes(MINIMAL.encode("gbk"))
    with pytest.raises(MatterError, match=r"gbk.toml: not UTF-8 text"):
        MatterCatalogue.load(bad)


def test_a_bad_extra_file_is_named_not_the_base(tmp_path: Path) -> None:
    """Errors in the agency's extra file point at that file."""
    extra = _write(tmp_path, _item_without_code(MINIMAL), "agency.toml")
    with pytest.raises(MatterError, match=rf"^{re.escape(str(extra))}: matter\[0\] \(XCJC\)"):
        MatterCatalogue.load(extra=extra)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=6),
                     st.sampled_from(["XCJC", "body", "penalty", "identity", ""]))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["code", "zh", "en", "required", "category", "carriers",
                                     "checklist", "name_zh", "x"]), inner, max_size=4)),
    max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(["code", "category", "name_zh", "carriers", "checklist", "place_en",
                            "record_zh", "extra"]), value=_values)
def test_any_field_value_either_loads_or_raises_matter_error(key: str, value: object) -> None:
    """Whatever a field holds, loading never fails with anything but a MatterError."""
    doc = tomllib.loads(MINIMAL)
    doc["matter"][0][key] = value
    try:
        _parse(doc, "fuzz")
    except MatterError as exc:
        assert str(exc).startswith("fuzz: ")


def test_carriers_constant_matches_the_seed() -> None:
    """The carrier vocabulary covers the seed's device kinds (Art. 2)."""
    assert set(CARRIERS) == {"body", "handheld", "stills", "video", "surveillance"}

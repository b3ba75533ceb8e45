"""The enforcement matter catalogue: which matters exist and what must be on their record.

The catalogue is data (``config/matters.toml``), not code, so an agency can extend or replace
it without a software release. Because a matter's entry is written into signed evidence, the
file is validated strictly when it is loaded: a typo must stop the agent at start-up with a
message naming the file, the entry and the field, not surface as an odd manifest months later.

Format (see the shipped file's header for the code scheme)::

    format = 1
    retention_days = N  (optional; days a station keeps a recording, default 180)
    [categories.<id>]   zh = "...", en = "..."
    [[matter]]          code, category, name_zh, name_en, carriers, place_zh, place_en,
                        record_zh, record_en, checklist = [{code, zh, en, required}, ...],
                        retention_days (optional: overrides the default for this matter)

A second ("extra") file in the same format is merged over the first: a matter whose code
already exists replaces that entry whole, a new code is added, categories merge by id.

Immutable once loaded, so it is safe to share between threads without a lock.
"""

from __future__ import annotations

import difflib
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from hw.errors import MatterError

from .matter_entry import Category, ChecklistItem, Matter

__all__ = [
    "CARRIERS",
    "SHIPPED_CATALOGUE",
    "Category",
    "ChecklistItem",
    "Matter",
    "MatterCatalogue",
]

#: Recording carriers named by the seed (记录载体).
CARRIERS: Final = ("body", "handheld", "stills", "video", "surveillance")

#: The catalogue shipped with the agent.
def _shipped() -> Path:
    """The catalogue in a source tree, else the copy a wheel installs under ``share/bodycam``."""
    source = Path(__file__).resolve().parents[2] / "config" / "matters.toml"
    if source.exists():
        return source
    return Path(sys.prefix) / "share" / "bodycam" / "matters.toml"


SHIPPED_CATALOGUE: Final = _shipped()

_FORMAT: Final = 1
_MATTER_CODE: Final = re.compile(r"[A-Z][A-Z0-9]{1,11}")
_ITEM_CODE: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
_CATEGORY_ID: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
_TEXT_MAX: Final = 512
_MATTER_KEYS: Final = ("code", "category", "name_zh", "name_en", "carriers", "place_zh",
                       "place_en", "record_zh", "record_en", "checklist", "retention_days")
_ITEM_KEYS: Final = ("code", "zh", "en", "required")
#: How long a station keeps a recording when neither its matter nor the catalogue says
#: (``retention_days``): at least six months, the shortest period agencies keep footage.
DEFAULT_RETENTION_DAYS: Final = 180
_RETENTION_MAX: Final = 100 * 366


class MatterCatalogue:
    """The matters an agent knows, by code."""

    def __init__(self, matters: Iterable[Matter], categories: Iterable[Category],
                 *, sources: Sequence[str] = (),
                 default_retention_days: int = DEFAULT_RETENTION_DAYS) -> None:
        self.default_retention_days = default_retention_days
        self._matters: dict[str, Matter] = {}
        for m in matters:
            if m.code in self._matters:
                raise MatterError(f"duplicate matter code {m.code!r}")
            self._matters[m.code] = m
        self._categories = {c.id: c for c in categories}
        self.sources = tuple(sources)

    # --- loading ----------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path | str | None = None, *, extra: Path | str | None = None
             ) -> MatterCatalogue:
        """Read and validate a catalogue (``None`` or ``""`` = the shipped one), then merge
        ``extra`` over it. Raises :class:`MatterError` naming the file, entry and field."""
        base = Path(path) if path else SHIPPED_CATALOGUE
        base_doc = _read(base)
        cats, matters = _parse(base_doc, _display(base))
        days = _retention(base_doc, _display(base)) or DEFAULT_RETENTION_DAYS
        sources = [_display(base)]
        if extra:
            extra_path = Path(extra)
            extra_doc = _read(extra_path)
            extra_cats, extra_matters = _parse(extra_doc, _display(extra_path),
                                               known_categories=cats)
            cats.update(extra_cats)
            matters.update(extra_matters)
            days = _retention(extra_doc, _display(extra_path)) or days
            sources.append(_display(extra_path))
        return cls(matters.values(), cats.values(), sources=sources,
                   default_retention_days=days)

    @classmethod
    def from_toml(cls, text: str, *, source: str = "<catalogue>") -> MatterCatalogue:
        """Parse catalogue text (for tools and tests that hold it in memory)."""
        doc = _loads(text, source)
        cats, matters = _parse(doc, source)
        return cls(matters.values(), cats.values(), sources=[source],
                   default_retention_days=_retention(doc, source) or DEFAULT_RETENTION_DAYS)

    # --- queries ----------------------------------------------------------------------------
    def retention_days(self, code: str | None) -> int:
        """Days a station keeps a recording under matter ``code`` (None, or a code this
        catalogue does not know: the default — never shorter because a code is unknown)."""
        m = self._matters.get(_normalise(code)) if code else None
        if m is None or m.retention_days is None:
            return self.default_retention_days
        return m.retention_days

    def __len__(self) -> int:
        return len(self._matters)

    def __iter__(self) -> Iterator[Matter]:
        return iter(self._matters.values())

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and _normalise(code) in self._matters

    @property
    def codes(self) -> tuple[str, ...]:
        """Every matter code, in catalogue order."""
        return tuple(self._matters)

    def category(self, category_id: str) -> Category:
        """A category by id."""
        return self._categories[category_id]

    def get(self, code: str) -> Matter:
        """The matter ``code`` (case-insensitive); unknown → :class:`MatterError` with close
        matches, so a mistyped code on a bench or from dispatch is easy to correct."""
        found = self._matters.get(_normalise(code))
        if found is None:
            raise MatterError(f"unknown matter code {code!r}{self._suggest(code)}")
        return found

    def lookup(self, code: str) -> dict[str, Any]:
        """The active-matter dict for ``code`` (see :meth:`Matter.entry`)."""
        return self.get(code).entry()

    def quick_list_valid(self, codes: Sequence[Any], *, key: str = "matters.quick_list"
                         ) -> tuple[str, ...]:
        """Check the button's quick list at start-up; returns the codes normalised.

        Raises :class:`MatterError` naming the position and the code: an unknown code there
        would only show when an officer cycles to it in the field.
        """
        out: list[str] = []
        for i, code in enumerate(codes):
            where = f"{key}[{i}]"
            if not isinstance(code, str) or not code.strip():
                raise MatterError(f"{where}: expected a matter code, got {code!r}")
            norm = _normalise(code)
            if norm not in self._matters:
                raise MatterError(f"{where}: unknown matter code {code!r}{self._suggest(code)}")
            if norm in out:
                raise MatterError(f"{where}: {norm!r} is listed twice (position {out.index(norm)})")
            out.append(norm)
        return tuple(out)

    def _suggest(self, code: str) -> str:
        close = difflib.get_close_matches(_normalise(code), self._matters, n=3, cutoff=0.5)
        if close:
            return f"; close: {', '.join(close)}"
        return f"; known: {', '.join(self._matters)}"


# --- parsing --------------------------------------------------------------------------------
def _normalise(code: str) -> str:
    return code.strip().upper()


def _display(path: Path) -> str:
    """The path as a reader knows it: repository-relative for the shipped file."""
    try:
        return str(path.resolve().relative_to(SHIPPED_CATALOGUE.parents[1]))
    except ValueError:
        return str(path)


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MatterError(f"{_display(path)}: cannot read the matter catalogue "
                          f"({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise MatterError(f"{_display(path)}: not UTF-8 text ({exc.reason})") from exc
    return _loads(text, _display(path))


def _loads(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MatterError(f"{source}: not valid TOML: {exc}") from exc


def _parse(doc: Mapping[str, Any], source: str,
           known_categories: Mapping[str, Category] | None = None
           ) -> tuple[dict[str, Category], dict[str, Matter]]:
    _only(doc, ("format", "retention_days", "categories", "matter"), source)
    _retention(doc, source)
    fmt = doc.get("format")
    if fmt != _FORMAT or isinstance(fmt, bool):
        raise MatterError(f"{source}: format: expected {_FORMAT}, got {fmt!r}")
    cats = _categories(doc.get("categories", {}), source)
    all_cats = {**(known_categories or {}), **cats}
    raw = doc.get("matter")
    if not isinstance(raw, list) or not raw:
        raise MatterError(f"{source}: expected at least one [[matter]] table")
    matters: dict[str, Matter] = {}
    for i, entry in enumerate(raw):
        m = _matter(entry, f"{source}: matter[{i}]", all_cats)
        if m.code in matters:
            first = list(matters).index(m.code)
            raise MatterError(f"{source}: matter[{i}] ({m.code}): duplicate code "
                              f"(also matter[{first}])")
        matters[m.code] = m
    return cats, matters


def _categories(raw: Any, source: str) -> dict[str, Category]:
    if not isinstance(raw, dict):
        raise MatterError(f"{source}: categories: expected a table of [categories.<id>]")
    out: dict[str, Category] = {}
    for cid, body in raw.items():
        where = f"{source}: categories.{cid}"
        if not _CATEGORY_ID.fullmatch(cid):
            raise MatterError(f"{where}: id must match {_CATEGORY_ID.pattern}")
        if not isinstance(body, dict):
            raise MatterError(f"{where}: expected a table with zh and en")
        _only(body, ("zh", "en"), where)
        out[cid] = Category(cid, _text(body, "zh", where), _text(body, "en", where))
    return out


def _matter(raw: Any, where: str, categories: Mapping[str, Category]) -> Matter:
    if not isinstance(raw, dict):
        raise MatterError(f"{where}: expected a table")
    code = raw.get("code")
    if isinstance(code, str) and code:
        where = f"{where} ({code})"
    code = _text(raw, "code", where)
    if not _MATTER_CODE.fullmatch(code):
        raise MatterError(f"{where}: code: {code!r} must be 2-12 characters of [A-Z0-9], "
                          "starting with a letter")
    _only(raw, _MATTER_KEYS, where)
    category = _text(raw, "category", where)
    if category not in categories:
        raise MatterError(f"{where}: category: {category!r} is not a declared category "
                          f"({', '.join(categories) or 'none declared'})")
    return Matter(
        code=code, category=category,
        name_zh=_text(raw, "name_zh", where), name_en=_text(raw, "name_en", where),
        carriers=_carriers(raw, where),
        place_zh=_text(raw, "place_zh", where), place_en=_text(raw, "place_en", where),
        record_zh=_text(raw, "record_zh", where), record_en=_text(raw, "record_en", where),
        checklist=_checklist(raw, where),
        retention_days=_retention(raw, where),
    )


def _carriers(raw: Mapping[str, Any], where: str) -> tuple[str, ...]:
    value = _present(raw, "carriers", where)
    if not isinstance(value, list) or not value:
        raise MatterError(f"{where}: carriers: expected a non-empty list of {', '.join(CARRIERS)}")
    for j, c in enumerate(value):
        if c not in CARRIERS:
            raise MatterError(f"{where}: carriers[{j}]: {c!r} is not one of {', '.join(CARRIERS)}")
    if len(set(value)) != len(value):
        raise MatterError(f"{where}: carriers: listed twice: {value!r}")
    return tuple(value)


def _checklist(raw: Mapping[str, Any], where: str) -> tuple[ChecklistItem, ...]:
    value = _present(raw, "checklist", where)
    if not isinstance(value, list) or not value:
        raise MatterError(f"{where}: checklist: expected a non-empty list of items")
    items: list[ChecklistItem] = []
    for j, item in enumerate(value):
        at = f"{where}.checklist[{j}]"
        if not isinstance(item, dict):
            raise MatterError(f"{at}: expected a table {{code, zh, en, required}}")
        code = _text(item, "code", at)
        if not _ITEM_CODE.fullmatch(code):
            raise MatterError(f"{at}: code: {code!r} must match {_ITEM_CODE.pattern}")
        at = f"{at} ({code})"
        _only(item, _ITEM_KEYS, at)
        required = _present(item, "required", at)
        if not isinstance(required, bool):
            raise MatterError(f"{at}: required: expected true or false, got {required!r}")
        if any(i.code == code for i in items):
            raise MatterError(f"{at}: duplicate item code within the matter")
        items.append(ChecklistItem(code, _text(item, "zh", at), _text(item, "en", at), required))
    return tuple(items)


def _retention(raw: Mapping[str, Any], where: str) -> int | None:
    """An optional ``retention_days``: a whole number of days, 1 to 100 years."""
    if "retention_days" not in raw:
        return None
    value = raw["retention_days"]
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= _RETENTION_MAX:
        raise MatterError(f"{where}: retention_days: expected a whole number of days from 1 to "
                          f"{_RETENTION_MAX}, got {value!r}")
    return value


def _present(raw: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in raw:
        raise MatterError(f"{where}: missing {key!r}")
    return raw[key]


def _text(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = _present(raw, key, where)
    if not isinstance(value, str):
        raise MatterError(f"{where}: {key}: expected a string, got {type(value).__name__} "
                          f"{value!r}")
    if not value.strip():
        raise MatterError(f"{where}: {key}: must not be empty")
    if len(value) > _TEXT_MAX:
        raise MatterError(f"{where}: {key}: longer than {_TEXT_MAX} characters")
    return value


def _only(raw: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise MatterError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"allowed: {', '.join(allowed)}")

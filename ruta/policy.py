"""The referral policy file: deadlines per tier (per country and category), tiers by category,
emergency numbers by country, quiet hours and time zones by country, kinds of help whose open
cases pause broadcasts. ``RUTA_POLICY_FILE`` points at another copy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from ruta import taxonomy

DEFAULT_FILE = Path(__file__).parent / "referral_policy.yaml"
TIERS = ("immediate", "urgent", "standard")


#: "or" between emergency numbers, per language.
OR_WORDS = {"es": "o", "en": "or", "fr": "ou", "pt": "ou", "ht": "oswa"}


@dataclass(frozen=True)
class Policy:
    raw: dict[str, Any]

    def deadline(self, tier: str, country: str | None, category: str) -> timedelta:
        deadlines = self.raw["deadlines"]
        minutes = dict(deadlines["default"])
        minutes.update((deadlines.get("countries") or {}).get(country or "", {}))
        minutes.update((deadlines.get("categories") or {}).get(f"{country}/{category}", {}))
        return timedelta(minutes=int(minutes[tier]))

    def tier(self, category: str, safe: bool) -> str:
        if not safe:
            return "immediate"
        return str((self.raw.get("category_tiers") or {}).get(category, "standard"))

    def emergency_numbers(self, country: str | None, language: str = "es") -> str:
        """The country's numbers joined in the person's language ("110 or 1500" in English); a
        list in the policy file, or a single number (older files: a string, kept as written)."""
        numbers = self.raw["emergency_numbers"]
        found = numbers.get(country or "", numbers["default"])
        if not isinstance(found, list):
            return str(found)
        words = [str(n) for n in found]
        joiner = OR_WORDS.get(language, OR_WORDS["en"])
        return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {joiner} {words[-1]}"

    def quiet_hours(self, country: str | None) -> tuple[time, time] | None:
        """Local (start, end) of the hours no non-urgent broadcast goes out; None: none.
        ``end`` before ``start`` means the quiet hours run over midnight."""
        hours = self.raw.get("quiet_hours") or {}
        entry = hours.get(country or "", hours.get("default"))
        if not entry:
            return None
        start, end = _hhmm(entry["start"]), _hhmm(entry["end"])
        return None if start == end else (start, end)

    def timezone(self, country: str | None) -> ZoneInfo:
        """The country's time zone (``timezones``), else ``timezones.default``, else UTC."""
        zones = self.raw.get("timezones") or {}
        return ZoneInfo(str(zones.get(country or "", zones.get("default", "UTC"))))

    @property
    def sensitive_categories(self) -> frozenset[str]:
        """Kinds of help whose open cases pause broadcasts to the person."""
        return frozenset(str(c) for c in self.raw.get("sensitive_categories") or ())


def _hhmm(value: Any) -> time:
    if isinstance(value, int):  # YAML 1.1 reads an unquoted 20:00 as a sexagesimal number
        return time(value // 60 % 24, value % 60)
    hours, minutes = str(value).split(":")
    return time(int(hours), int(minutes))


def check(raw: Any) -> list[str]:
    problems = []
    if not isinstance(raw, dict):
        return ["the policy file is a mapping"]
    default = (raw.get("deadlines") or {}).get("default") or {}
    problems += [f"deadlines.default.{t} is missing" for t in TIERS if t not in default]
    if "default" not in (raw.get("emergency_numbers") or {}):
        problems.append("emergency_numbers.default is missing")
    for category, tier in (raw.get("category_tiers") or {}).items():
        if tier not in TIERS:
            problems.append(f"category_tiers.{category}: '{tier}' is not a tier")
    for country, entry in (raw.get("quiet_hours") or {}).items():
        try:
            _hhmm(entry["start"]), _hhmm(entry["end"])
        except (KeyError, TypeError, ValueError):
            problems.append(f"quiet_hours.{country} needs start and end as HH:MM")
    for country, zone in (raw.get("timezones") or {}).items():
        try:
            ZoneInfo(str(zone))
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"timezones.{country}: '{zone}' is not a time zone")
    if not isinstance(raw.get("sensitive_categories") or [], list):
        problems.append("sensitive_categories is a list")
    problems += _unknown_categories(raw)
    return problems


def _category_keys(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, code) of every kind of help the policy names."""
    keys = [(f"category_tiers.{c}", str(c)) for c in raw.get("category_tiers") or {}]
    keys += [("sensitive_categories", str(c)) for c in raw.get("sensitive_categories") or []]
    for key in (raw.get("deadlines") or {}).get("categories") or {}:
        keys.append((f"deadlines.categories.{key}", str(key).rpartition("/")[2]))
    return keys


def _unknown_categories(raw: dict[str, Any]) -> list[str]:
    # A misspelt kind would silently fall back to the standard tier or to no pause at all.
    codes = taxonomy.load().codes
    return [
        f"{where}: '{code}' is not a kind of help of the taxonomy"
        for where, code in _category_keys(raw)
        if code not in codes
    ]


def _current_codes(raw: Any) -> Any:
    """The policy with old codes (legal, children) read as the taxonomy's current ones."""
    if not isinstance(raw, dict):
        return raw
    known = taxonomy.load()

    def code(value: Any) -> str:
        return known.canonical(str(value)) or str(value)

    raw = dict(raw)
    if isinstance(raw.get("category_tiers"), dict):
        raw["category_tiers"] = {code(k): v for k, v in raw["category_tiers"].items()}
    if isinstance(raw.get("sensitive_categories"), list):
        raw["sensitive_categories"] = [code(c) for c in raw["sensitive_categories"]]
    deadlines = raw.get("deadlines")
    if isinstance(deadlines, dict) and isinstance(deadlines.get("categories"), dict):
        renamed = {}
        for key, value in deadlines["categories"].items():
            country, slash, category = str(key).rpartition("/")
            renamed[f"{country}{slash}{code(category)}"] = value
        raw["deadlines"] = {**deadlines, "categories": renamed}
    return raw


@lru_cache(maxsize=4)
def load(path: str | None = None) -> Policy:
    raw = _current_codes(yaml.safe_load(Path(path or DEFAULT_FILE).read_text(encoding="utf-8")))
    problems = check(raw)
    if problems:
        raise ValueError(f"referral policy {path or DEFAULT_FILE}: " + "; ".join(problems))
    return Policy(raw)

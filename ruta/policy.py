"""The referral policy file: deadlines per tier (per country and category), tiers by category,
emergency numbers by country. ``RUTA_POLICY_FILE`` points at another copy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

DEFAULT_FILE = Path(__file__).parent / "referral_policy.yaml"
TIERS = ("immediate", "urgent", "standard")


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

    def emergency_numbers(self, country: str | None) -> str:
        numbers = self.raw["emergency_numbers"]
        return str(numbers.get(country or "", numbers["default"]))


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
    return problems


@lru_cache(maxsize=4)
def load(path: str | None = None) -> Policy:
    raw = yaml.safe_load(Path(path or DEFAULT_FILE).read_text(encoding="utf-8"))
    problems = check(raw)
    if problems:
        raise ValueError(f"referral policy {path or DEFAULT_FILE}: " + "; ".join(problems))
    return Policy(raw)

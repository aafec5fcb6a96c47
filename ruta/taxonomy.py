"""One vocabulary for kinds of help and directory categories, and the words that replace codes
in every text a person, a focal point or a member of staff reads.

``ruta/taxonomy.yaml`` is the standard list (codes, names, flags, aliases, the words for tiers
and safe times); the ``categories`` table holds the terms with the names the admin may have
edited, so a name is read from the table first and from the file when the table lacks it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from flows.model import Issue, Library
from flows.translatable import Text
from ruta.models import Category

FILE = Path(__file__).parent / "taxonomy.yaml"
DEFAULT_LANGUAGE = "es"


@dataclass(frozen=True)
class Term:
    code: str
    names: dict[str, str]
    kind_of_help: bool = False
    listed: bool = False
    sensitive: bool = False
    replaces: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Taxonomy:
    terms: tuple[Term, ...]
    tiers: dict[str, dict[str, str]]
    safe_times: dict[str, dict[str, str]]
    hsds: dict[str, str]
    #: Other words staff read instead of codes, by group ("statuses", "outcomes", "events"...).
    words: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(term.code for term in self.terms)

    def term(self, code: str) -> Term | None:
        return next((t for t in self.terms if t.code == code), None)

    def help_codes(self) -> tuple[str, ...]:
        """The kinds of help the ask_help flow offers, in menu order."""
        return tuple(term.code for term in self.terms if term.kind_of_help)

    def canonical(self, word: str) -> str | None:
        """The code a code, an old code or another directory's term stands for; None if none."""
        folded = _fold(word)
        for term in self.terms:
            if folded == term.code or folded in (_fold(a) for a in term.replaces + term.aliases):
                return term.code
        return None

    def code_words(self) -> frozenset[str]:
        """Every code that must never reach a reader: kinds (and their old codes), tiers and
        safe times."""
        old = {code for term in self.terms for code in term.replaces}
        return frozenset({*self.codes, *old, *self.tiers, *self.safe_times})


def _fold(word: str) -> str:
    """Case, accents, ``-``/``_`` and spacing ignored: "Niñez", "ninez" and "NIÑEZ" match."""
    plain = "".join(
        ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch)
    )
    return " ".join(plain.casefold().replace("_", " ").replace("-", " ").split())


def _names(raw: Any, where: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not raw or DEFAULT_LANGUAGE not in raw:
        raise ValueError(f"{where}: names per language, with '{DEFAULT_LANGUAGE}'")
    return {str(k): str(v) for k, v in raw.items()}


def parse(raw: Any) -> Taxonomy:
    if not isinstance(raw, dict) or not isinstance(raw.get("terms"), list):
        raise ValueError("the taxonomy file is a mapping with a list of terms")
    terms = []
    for entry in raw["terms"]:
        code = str(entry["code"])
        if not re.fullmatch(r"[a-z][a-z0-9_]*", code):
            raise ValueError(f"term '{code}': codes are lower-case letters, digits and _")
        terms.append(
            Term(
                code=code,
                names=_names(entry.get("names"), f"term {code}"),
                kind_of_help=bool(entry.get("kind_of_help")),
                listed=bool(entry.get("listed")),
                sensitive=bool(entry.get("sensitive")),
                replaces=tuple(str(a) for a in entry.get("replaces") or ()),
                aliases=tuple(str(a) for a in entry.get("aliases") or ()),
            )
        )
    return Taxonomy(
        terms=tuple(terms),
        tiers={str(k): _names(v, f"tier {k}") for k, v in (raw.get("tiers") or {}).items()},
        safe_times={
            str(k): _names(v, f"safe time {k}") for k, v in (raw.get("safe_times") or {}).items()
        },
        hsds={str(k): str(v) for k, v in (raw.get("hsds") or {}).items()},
        words={
            str(group): {str(k): _names(v, f"{group} {k}") for k, v in (codes or {}).items()}
            for group, codes in (raw.get("words") or {}).items()
        },
    )


@lru_cache(maxsize=1)
def load() -> Taxonomy:
    return parse(yaml.safe_load(FILE.read_text(encoding="utf-8")))


def _pick(names: dict[str, str], language: str) -> str | None:
    return names.get(language) or names.get(DEFAULT_LANGUAGE) or next(iter(names.values()), None)


def kind_name(session: Session | None, code: str, language: str) -> str:
    """A kind of help by its name in ``language``: the table's (as edited), else the file's.
    An unknown code is returned as it is: nothing better is known about it."""
    names = None
    if session is not None:
        names = session.scalar(select(Category.names).where(Category.code == code))
    return kind_name_from(names, code, language)


def kind_name_from(names: dict[str, str] | None, code: str, language: str) -> str:
    """``kind_name`` given the table's names of ``code`` (None: not in the table), for callers
    that read them with other rows in one query."""
    if names and (found := _pick(names, language)):
        return found
    term = load().term(load().canonical(code) or code)
    return (_pick(term.names, language) if term else None) or code


def kind_names(session: Session, language: str) -> dict[str, str]:
    """Every kind of help's name in ``language``, in the table's order."""
    found = {t.code: _pick(t.names, language) or t.code for t in load().terms}
    rows = session.execute(
        select(Category.code, Category.names).order_by(Category.position, Category.code)
    )
    ordered = {code: _pick(names or {}, language) or found.get(code, code) for code, names in rows}
    return {**ordered, **{k: v for k, v in found.items() if k not in ordered}}


def tier_name(code: str, language: str) -> str:
    """An urgency tier as a word in sentence case, e.g. "Urgente"."""
    names = load().tiers.get(code)
    return (_pick(names, language) if names else None) or code


def safe_time_name(code: str | None, language: str) -> str:
    """When it is safe to contact the person, in words ("por la tarde"); "-" if not said."""
    if not code:
        return "-"
    names = load().safe_times.get(code)
    return (_pick(names, language) if names else None) or code


def word(group: str, code: str | None, language: str) -> str:
    """A code of ``group`` ("statuses", "outcomes", "events", "tiers", "safe_times", "kinds")
    in ``language``, from the file; an unknown code is returned as it is, "-" for none."""
    if not code:
        return "-"
    vocabulary = load()
    if group == "kinds":
        term = vocabulary.term(vocabulary.canonical(code) or code)
        names = term.names if term else None
    elif group == "tiers":
        names = vocabulary.tiers.get(code)
    elif group == "safe_times":
        names = vocabulary.safe_times.get(code)
    else:
        names = vocabulary.words.get(group, {}).get(code)
    return (_pick(names, language) if names else None) or code


def check_flows(library: Library) -> list[Issue]:
    """Every kind of help a flow can hand to ``create_case`` is a kind of help of the taxonomy:
    the static options of a menu saving ``category`` and literal ``category`` arguments."""
    kinds = set(load().help_codes())
    issues = []
    for versions in library.flows.values():
        flow = versions[max(versions)]
        creates = any(
            n.kind == "action" and n.spec.get("action") == "create_case"
            for n in flow.nodes.values()
        )
        for node in flow.nodes.values():
            where = f"flow[{flow.key}] node[{node.id}]"
            values: list[str] = []
            if creates and node.kind == "menu" and node.spec.get("save_as") == "category":
                values = [str(o.get("value")) for o in node.spec.get("options") or []]
            elif node.kind == "action" and node.spec.get("action") == "create_case":
                category = str((node.spec.get("args") or {}).get("category", ""))
                values = [category] if category and "{" not in category else []
            issues += [
                Issue(where, Text("'%(kind)s' is not a kind of help of ruta/taxonomy.yaml", kind=v))
                for v in values
                if v not in kinds
            ]
    return issues

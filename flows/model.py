"""Flow definitions as data: what the loader builds and the engine and validator read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: language code -> text
Texts = dict[str, str]

#: Most steps the engine takes for one inbound message before it stops a runaway loop.
MAX_STEPS_PER_MESSAGE = 50
#: Most options on one page of a menu (numbered 1-9).
MAX_MENU_OPTIONS = 9
#: Most nodes in one flow.
MAX_NODES_PER_FLOW = 200


@dataclass(frozen=True)
class Issue:
    """A validation finding with a path: ``flow[main] node[welcome] lang[en]: ...``.

    ``error`` issues block loading and publishing; soft ones (``error=False``) are shown to editors.
    """

    path: str
    message: str
    error: bool = True

    def __str__(self) -> str:
        kind = "error" if self.error else "warning"
        return f"{kind}: {self.path}: {self.message}"


class DefinitionError(ValueError):
    """A flow document cannot be read; ``issues`` says where and why."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues))


@dataclass
class Node:
    id: str
    kind: str
    spec: dict[str, Any]


@dataclass
class ExampleStep:
    send: str
    expect: list[str] = field(default_factory=list)
    expect_not: list[str] = field(default_factory=list)


@dataclass
class Example:
    name: str
    language: str | None
    steps: list[ExampleStep]


@dataclass
class Flow:
    key: str
    name: str
    default_language: str
    languages: list[str]
    start: str
    nodes: dict[str, Node]
    examples: list[Example] = field(default_factory=list)
    sensitive: bool = False
    version: int = 0
    source: str = ""

    def text(self, texts: Texts, language: str) -> str:
        """The text in ``language``, else in the flow's default language."""
        if language in texts:
            return texts[language]
        return texts.get(self.default_language, next(iter(texts.values()), ""))


@dataclass
class Settings:
    """Global keywords and system messages (``flows/definitions/settings.yaml``)."""

    main_flow: str
    languages: dict[str, str]  # code -> name shown in the language menu
    default_language: str
    keywords: dict[str, list[str]]  # role -> words (restart, back, help, language, opt_out, ...)
    keyword_language: dict[str, str]  # folded word -> language it hints at for a new contact
    messages: dict[str, Texts]
    # folded word -> flow it enters from anywhere (``flow_keywords``: ALERTAS -> alerts)
    flow_keywords: dict[str, str] = field(default_factory=dict)

    def message(self, key: str, language: str) -> str:
        texts = self.messages.get(key) or FALLBACK_MESSAGES[key]
        return texts.get(language) or texts.get(self.default_language) or texts["es"]


#: Engine texts added after settings files were first published: a settings file (or a published
#: version of one) without them still runs, with these.
FALLBACK_MESSAGES: dict[str, dict[str, str]] = {
    "help_ussd": {
        "es": "Marque el numero de una opcion. 0: atras.",
        "en": "Key in an option number. 0: back.",
    },
    "yes_no_sms": {"es": "Responda SI (1) o NO (2).", "en": "Reply YES (1) or NO (2)."},
    "yes_no_ussd": {"es": "1 Si\n2 No", "en": "1 Yes\n2 No"},
    "again": {"es": "Envie HOLA", "en": "Send HELLO"},
    "again_ussd": {"es": "Marque {dial_code}", "en": "Dial {dial_code}"},
    "menu_key": {"es": "HOLA", "en": "HELLO"},
}


@dataclass
class Library:
    """Every flow the engine may run, by key and version, plus the global settings."""

    settings: Settings
    flows: dict[str, dict[int, Flow]] = field(default_factory=dict)

    def add(self, flow: Flow) -> None:
        self.flows.setdefault(flow.key, {})[flow.version] = flow

    def current(self, key: str) -> Flow:
        versions = self.flows.get(key)
        if not versions:
            raise KeyError(f"no flow {key!r}")
        return versions[max(versions)]

    def get(self, key: str, version: int | None) -> Flow:
        if version is not None and version in self.flows.get(key, {}):
            return self.flows[key][version]
        return self.current(key)

    def latest(self) -> list[Flow]:
        return [versions[max(versions)] for versions in self.flows.values()]

"""Reading flow documents (YAML) into ``Flow`` objects, and the settings file into ``Settings``.

Shape errors raise ``DefinitionError`` with a path for each problem; the deeper checks
(reachability, translations, budgets) are ``flows.validate``'s.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from flows.model import DefinitionError, Example, ExampleStep, Flow, Issue, Library, Node, Settings
from flows.text import fold
from flows.translatable import Text

DEFINITIONS_DIR = Path(__file__).parent / "definitions"
SETTINGS_FILE = "settings.yaml"
#: Messages the engine itself sends; the settings file must have each, in the default language.
SYSTEM_MESSAGES = (
    "opted_out",
    "erased",
    "opted_in",
    "expired",
    "help",
    "language_menu",
    "language_set",
    "invalid_option",
    "invalid_answer",
    "too_many_attempts",
    "more",
    "list_hint",
    "nothing_to_choose",
    "sms_offer",
    "sms_coming",
    "resume",
    "resume_continue",
    "resume_restart",
    "error",
)
KEYWORD_ROLES = ("restart", "back", "help", "language", "opt_out", "opt_in", "erase", "more")


def checksum(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


ALIASES_REFUSED = Text("YAML anchors and aliases (&name, *name) are not allowed")


class _AliasFound(yaml.YAMLError):
    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__(f"line {mark.line + 1}")
        self.mark = mark


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases. Sources come from editors (and a viewer can
    post one to validate): a few hundred bytes of nested aliases expand to billions of words in
    anything that walks the document, so they are refused before anything is built."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AliasFound(event.start_mark)
        return super().compose_node(parent, index)


def _parse_yaml(source: str, where: str) -> Any:
    try:
        return yaml.load(source, Loader=_NoAliasLoader)  # noqa: S506  (a SafeLoader)
    except _AliasFound as exc:
        line = exc.mark.line + 1
        raise DefinitionError(
            [Issue(where, Text("%(refused)s (line %(line)s)", refused=ALIASES_REFUSED, line=line))]
        ) from exc
    except yaml.YAMLError as exc:
        raise DefinitionError(
            [Issue(where, Text("not valid YAML: %(error)s", error=str(exc)))]
        ) from exc


def parse_flow(source: str, *, version: int = 0, where: str = "flow") -> Flow:
    """Read one flow document."""
    doc = _parse_yaml(source, where)
    if not isinstance(doc, dict):
        raise DefinitionError([Issue(where, Text("a flow document is a mapping"))])
    key = doc.get("flow")
    path = f"flow[{key}]" if isinstance(key, str) else where
    issues = [
        Issue(path, Text("'%(name)s' is required", name=name))
        for name in ("flow", "languages", "start", "nodes")
        if name not in doc
    ]
    languages = doc.get("languages")
    if "languages" in doc and (
        not isinstance(languages, list) or not all(isinstance(x, str) for x in languages)
    ):
        issues.append(Issue(path, Text("'languages' is a list of ISO 639 codes")))
    raw_nodes = doc.get("nodes")
    if "nodes" in doc and not isinstance(raw_nodes, dict):
        issues.append(Issue(path, Text("'nodes' maps node ids to nodes")))
    nodes: dict[str, Node] = {}
    for node_id, spec in (raw_nodes or {}).items() if isinstance(raw_nodes, dict) else []:
        if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
            issues.append(
                Issue(f"{path} node[{node_id}]", Text("a node is a mapping with a 'type'"))
            )
            continue
        nodes[str(node_id)] = Node(str(node_id), spec["type"], spec)
    examples = _examples(doc.get("examples") or [], path, issues)
    if issues:
        raise DefinitionError(issues)
    assert isinstance(languages, list)
    return Flow(
        key=str(key),
        name=str(doc.get("name", key)),
        default_language=str(doc.get("default_language", languages[0])),
        languages=languages,
        start=str(doc["start"]),
        nodes=nodes,
        examples=examples,
        sensitive=bool(doc.get("sensitive", False)),
        version=version,
        source=source,
    )


def _examples(raw: Any, path: str, issues: list[Issue]) -> list[Example]:
    examples = []
    if not isinstance(raw, list):
        issues.append(Issue(path, Text("'examples' is a list")))
        return []
    for i, example in enumerate(raw, 1):
        where = f"{path} example[{i}]"
        steps_raw = example.get("steps") if isinstance(example, dict) else None
        if not isinstance(steps_raw, list):
            issues.append(Issue(where, Text("an example needs 'steps'")))
            continue
        steps = []
        for step in steps_raw:
            if not isinstance(step, dict) or "send" not in step:
                issues.append(Issue(where, Text("each step needs 'send'")))
                continue
            expect = step.get("expect", [])
            expect_not = step.get("expect_not", [])
            steps.append(
                ExampleStep(
                    send=str(step["send"]),
                    expect=[expect] if isinstance(expect, str) else [str(e) for e in expect],
                    expect_not=[expect_not]
                    if isinstance(expect_not, str)
                    else [str(e) for e in expect_not],
                )
            )
        examples.append(Example(str(example.get("name", i)), example.get("language"), steps))
    return examples


def parse_settings(source: str) -> Settings:
    doc = _parse_yaml(source, "settings")
    issues: list[Issue] = []
    if not isinstance(doc, dict):
        raise DefinitionError([Issue("settings", Text("the settings file is a mapping"))])
    languages = doc.get("languages") or {}
    default = doc.get("default_language", "es")
    keywords = doc.get("keywords") or {}
    messages = doc.get("messages") or {}
    for role in KEYWORD_ROLES:
        if not isinstance(keywords.get(role), list):
            issues.append(Issue(f"settings keywords[{role}]", Text("a list of words is required")))
    for name in SYSTEM_MESSAGES:
        texts = messages.get(name)
        if not isinstance(texts, dict) or default not in texts:
            issues.append(
                Issue(
                    f"settings message[{name}]",
                    Text("a text in '%(language)s' is required", language=default),
                )
            )
        else:
            for language in languages:
                if language not in texts:
                    issues.append(
                        Issue(f"settings message[{name}] lang[{language}]", Text("missing"))
                    )
    flow_keywords = doc.get("flow_keywords") or {}
    if not isinstance(flow_keywords, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in flow_keywords.items()
    ):
        issues.append(Issue("settings flow_keywords", Text("maps words to flow keys")))
        flow_keywords = {}
    if issues:
        raise DefinitionError(issues)
    hints = {
        fold(word): language
        for language, words in (doc.get("keyword_language") or {}).items()
        for word in words
    }
    return Settings(
        main_flow=str(doc.get("main_flow", "main")),
        languages={str(k): str(v) for k, v in languages.items()},
        default_language=str(default),
        keywords={role: [str(w) for w in words] for role, words in keywords.items()},
        keyword_language=hints,
        messages={k: dict(v) for k, v in messages.items()},
        flow_keywords={fold(word): key for word, key in flow_keywords.items()},
    )


def load_directory(folder: Path = DEFINITIONS_DIR) -> Library:
    """Every ``*.yaml`` flow in ``folder`` (version 0: not yet published) plus its settings."""
    settings = parse_settings((folder / SETTINGS_FILE).read_text(encoding="utf-8"))
    library = Library(settings)
    issues: list[Issue] = []
    for path in sorted(folder.glob("*.yaml")):
        if path.name == SETTINGS_FILE:
            continue
        try:
            library.add(parse_flow(path.read_text(encoding="utf-8"), where=path.name))
        except DefinitionError as exc:
            issues += exc.issues
    if issues:
        raise DefinitionError(issues)
    return library

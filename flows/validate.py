"""``ruta flows validate``: every check an editor needs before a flow may run.

Errors (blocking): unknown node kinds, missing targets, unreachable nodes, missing translations,
variables used before any path can set them, replies over the channel budget. Warnings (soft):
option keywords that a global keyword shadows. Every issue names flow, node and language.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flows.context import CHANNEL_WORDS, Budget, Context
from flows.model import MAX_NODES_PER_FLOW, Flow, Issue, Library, Node
from flows.nodes import KINDS
from flows.nodes.base import texts_of
from flows.services import Services
from flows.text import fold, variables_in
from flows.translatable import Text

#: Variables every flow may use without setting them.
BUILTIN_VARIABLES = frozenset({"contact.language", *CHANNEL_WORDS})
#: Stand-in for a variable's value when a reply's length is checked.
SAMPLE_VALUE = "X" * 16


#: What every reply is checked against unless told otherwise: two SMS, one USSD screen.
DEFAULT_BUDGETS = (Budget("sms", 2), Budget.ussd(182))


def validate_library(
    library: Library,
    budgets: list[Budget] | None = None,
    directories: Sequence[Directory] = (),
) -> list[Issue]:
    """Every issue of every flow; with ``directories``, menus of names are rendered with theirs."""
    budgets = budgets or list(DEFAULT_BUDGETS)
    issues: list[Issue] = []
    for flow in library.latest():
        issues += validate_flow(flow, library, budgets, directories)
    issues += _check_variables(library)
    return issues


def validate_flow(
    flow: Flow, library: Library, budgets: list[Budget], directories: Sequence[Directory] = ()
) -> list[Issue]:
    path = f"flow[{flow.key}]"
    issues: list[Issue] = []
    if len(flow.nodes) > MAX_NODES_PER_FLOW:
        issues.append(Issue(path, Text("more than %(n)s nodes", n=MAX_NODES_PER_FLOW)))
    if flow.default_language not in flow.languages:
        issues.append(
            Issue(
                path,
                Text(
                    "default language '%(language)s' is not declared",
                    language=flow.default_language,
                ),
            )
        )
    if flow.start not in flow.nodes:
        issues.append(Issue(path, Text("start node '%(node)s' does not exist", node=flow.start)))
    malformed = set()
    for node in flow.nodes.values():
        where = f"{path} node[{node.id}]"
        kind = KINDS.get(node.kind)
        if kind is None:
            issues.append(
                Issue(
                    where,
                    Text(
                        "unknown type '%(kind)s' (known: %(known)s)",
                        kind=node.kind,
                        known=", ".join(KINDS),
                    ),
                )
            )
            malformed.add(node.id)
            continue
        shape = kind.check(flow, node, where)
        issues += shape
        if shape:
            malformed.add(node.id)
            continue
        for target in kind.targets(node):
            if target not in flow.nodes:
                issues.append(
                    Issue(where, Text("target '%(target)s' does not exist", target=target))
                )
        for key in kind.flow_targets(node):
            if key not in library.flows:
                issues.append(Issue(where, Text("flow '%(flow)s' does not exist", flow=key)))
        for field, texts in kind.texts(node):
            if "*" in texts:
                continue
            for language in flow.languages:
                if not texts.get(language, "").strip():
                    issues.append(
                        Issue(
                            f"{where} lang[{language}]",
                            Text("missing translation of '%(field)s'", field=field),
                        )
                    )
        issues += _shadowed_keywords(node, library, where)
        if node.spec.get("review"):
            issues.append(
                Issue(where, Text("text marked for review by this deployment"), error=False)
            )
    issues += _unreachable(flow, path)
    issues += _budgets(flow, path, budgets, malformed, library, directories)
    return issues


def _successors(node: Node) -> list[str]:
    kind = KINDS.get(node.kind)
    return kind.targets(node) if kind else []


def _unreachable(flow: Flow, path: str) -> list[Issue]:
    if flow.start not in flow.nodes:
        return []
    seen = {flow.start}
    queue = deque([flow.start])
    while queue:
        for target in _successors(flow.nodes[queue.popleft()]):
            if target in flow.nodes and target not in seen:
                seen.add(target)
                queue.append(target)
    return [
        Issue(f"{path} node[{node_id}]", Text("unreachable from the start node"))
        for node_id in flow.nodes
        if node_id not in seen
    ]


def _shadowed_keywords(node: Node, library: Library, where: str) -> list[Issue]:
    if node.kind != "menu":
        return []
    global_words = {
        fold(w): role for role, words in library.settings.keywords.items() for w in words
    }
    issues = []
    for i, option in enumerate(node.spec.get("options") or [], 1):
        words = option.get("keywords") or [] if isinstance(option, dict) else []
        if isinstance(words, dict):
            words = [w for ws in words.values() for w in ws]
        for word in words:
            if fold(str(word)) in global_words:
                role = global_words[fold(str(word))]
                issues.append(
                    Issue(
                        f"{where} option[{i}]",
                        Text(
                            "keyword '%(word)s' is the global '%(role)s' keyword and never"
                            " reaches here",
                            word=word,
                            role=role,
                        ),
                        error=False,
                    )
                )
    return issues


def _budgets(
    flow: Flow,
    path: str,
    budgets: list[Budget],
    malformed: set[str],
    library: Library,
    directories: Sequence[Directory],
) -> list[Issue]:
    """Render every reply as it is sent: each node alone (every menu page, re-prompt, help and
    error screen), and a message followed by what it leads to; menus of the directory's names
    once per directory view given (without one, those menus are not checked)."""
    issues: list[Issue] = []
    seen: set[tuple[str, str]] = set()
    nodes = [n for n in flow.nodes.values() if n.id not in malformed]
    for language, budget in ((lang, b) for lang in flow.languages for b in budgets):
        for node in nodes:
            views: Sequence[Directory] = directories if _needs_directory(node) else [_NO_DIRECTORY]
            for view in views:
                ctx = _context(flow, node, language, budget, library, view)
                texts = KINDS[node.kind].rendered(ctx)
                if node.kind == "message":
                    chain = _chain(flow, node, language, malformed, budget, library, view)
                    texts += [chain] if chain else []
                where = f"{path} node[{node.id}] lang[{language}]" + (
                    f" directory[{view.name}]" if view.name else ""
                )
                for text in texts:
                    if budget.fits(text) or (where, text) in seen:
                        continue
                    seen.add((where, text))
                    issues.append(Issue(where, _over_budget(text, budget)))
    return issues


@dataclass(frozen=True)
class Directory:
    """A view of the directory the validator renders menus of names with: ``name`` says which
    (a country's people see its places first)."""

    name: str
    services: Services | None


_NO_DIRECTORY = Directory("", None)


def _needs_directory(node: Node) -> bool:
    return node.kind == "menu" and "options_action" in node.spec


def _context(
    flow: Flow, node: Node, language: str, budget: Budget, library: Library, view: Directory
) -> Context:
    return Context(
        flow=flow,
        node=node,
        language=language,
        variables=_sample_variables(flow, library),
        scratch={},
        services=view.services or _NoServices(),
        settings=library.settings,
        budget=budget,
        now=datetime.now(UTC),
    )


def _sample_variables(flow: Flow, library: Library) -> dict[str, Any]:
    """A stand-in for every variable the flow's texts use; a list for menus built from one."""
    names: set[str] = set()
    for node in flow.nodes.values():
        kind = KINDS.get(node.kind)
        for _, texts in kind.texts(node) if kind else []:
            for template in texts.values():
                names.update(variables_in(template))
    values: dict[str, Any] = {name: SAMPLE_VALUE for name in names}
    for node in flow.nodes.values():
        source = node.spec.get("options_from")
        if isinstance(source, str):
            values[source] = [{"value": str(i), "label": SAMPLE_VALUE} for i in range(3)]
    return values


class _NoServices:
    """Services for rendering without a directory: nothing needs them there."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"the validator needs a directory for {name}")


def _chain(
    flow: Flow,
    node: Node,
    language: str,
    malformed: set[str],
    budget: Budget,
    library: Library,
    view: Directory,
) -> str | None:
    """The one reply a run of message nodes and the node it ends on become."""
    parts, current, seen = [], node, set()
    while current.kind == "message" and current.id not in seen:
        seen.add(current.id)
        ctx = _context(flow, current, language, budget, library, view)
        parts.append(ctx.render(texts_of(current.spec["text"]) or {}))
        target = current.spec.get("next")
        if not isinstance(target, str) or target not in flow.nodes or target in malformed:
            return "\n".join(parts) if len(parts) > 1 else None
        current = flow.nodes[target]
    if _needs_directory(current) and view.services is None:
        return "\n".join(parts) if len(parts) > 1 else None
    ctx = _context(flow, current, language, budget, library, view)
    ctx.replies.extend(parts)
    if current.kind in ("menu", "ask"):
        # What the question says first, after the messages (a menu may drop its question).
        KINDS[current.kind].enter(ctx)
    else:
        ctx.replies.extend(KINDS[current.kind].rendered(ctx)[:1])
    return "\n".join(ctx.replies) if len(ctx.replies) > 1 else None


def _over_budget(text: str, budget: Budget) -> Text:
    from flows.encoding import sms_cost

    longest = max(text.splitlines() or [""], key=len)
    if budget.max_chars is not None:
        return Text(
            "%(channel)s screen is %(n)s characters; the limit is %(limit)s"
            " (longest line: %(line)s)",
            channel=budget.channel,
            n=len(text),
            limit=budget.max_chars,
            line=repr(longest),
        )
    cost = sms_cost(text)
    return Text(
        "reply is %(segments)s SMS segments (%(encoding)s, %(units)s units); the limit is"
        " %(limit)s (longest line: %(line)s)",
        segments=cost.segments,
        encoding=cost.encoding,
        units=cost.units,
        limit=budget.max_segments,
        line=repr(longest),
    )


def _check_variables(library: Library) -> list[Issue]:
    """Each variable a node reads must be set on some path that reaches it (across flows)."""
    flows = {flow.key: flow for flow in library.latest()}
    available: dict[tuple[str, str], set[str]] = {}
    main = library.settings.main_flow
    if main not in flows or flows[main].start not in flows[main].nodes:
        return []
    queue = deque([(main, flows[main].start)])
    available[(main, flows[main].start)] = set()
    while queue:
        key, node_id = queue.popleft()
        node = flows[key].nodes[node_id]
        kind = KINDS.get(node.kind)
        if kind is None:
            continue
        out = available[(key, node_id)] | set(kind.sets(node))
        successors = [(key, t) for t in kind.targets(node) if t in flows[key].nodes]
        successors += [(k, flows[k].start) for k in kind.flow_targets(node) if k in flows]
        for successor in successors:
            before = available.get(successor)
            if before is None or not out <= before:
                available[successor] = (before or set()) | out
                queue.append(successor)
    issues = []
    for (key, node_id), known in sorted(available.items()):
        node = flows[key].nodes[node_id]
        kind = KINDS.get(node.kind)
        if kind is None:
            continue
        used = set(kind.uses(node))
        for _, texts in kind.texts(node):
            for template in texts.values():
                used.update(variables_in(template))
        for name in sorted(used - known - BUILTIN_VARIABLES):
            issues.append(
                Issue(
                    f"flow[{key}] node[{node_id}]",
                    Text("variable '%(name)s' is used before any path sets it", name=name),
                )
            )
    return issues

"""``ruta flows validate``: every check an editor needs before a flow may run.

Errors (blocking): unknown node kinds, missing targets, unreachable nodes, missing translations,
variables used before any path can set them, replies over the channel budget. Warnings (soft):
option keywords that a global keyword shadows. Every issue names flow, node and language.
"""

from __future__ import annotations

from collections import deque

from flows.context import Budget
from flows.model import MAX_NODES_PER_FLOW, Flow, Issue, Library, Node
from flows.nodes import KINDS
from flows.nodes.base import texts_of
from flows.text import fill, fold, variables_in

#: Variables every flow may use without setting them.
BUILTIN_VARIABLES = frozenset({"contact.language"})
#: Stand-in for a variable's value when a reply's length is checked.
SAMPLE_VALUE = "X" * 16


#: What every reply is checked against unless told otherwise: two SMS, one USSD screen.
DEFAULT_BUDGETS = (Budget("sms", 2), Budget.ussd(182))


def validate_library(library: Library, budgets: list[Budget] | None = None) -> list[Issue]:
    budgets = budgets or list(DEFAULT_BUDGETS)
    issues: list[Issue] = []
    for flow in library.latest():
        issues += validate_flow(flow, library, budgets)
    issues += _check_variables(library)
    return issues


def validate_flow(flow: Flow, library: Library, budgets: list[Budget]) -> list[Issue]:
    path = f"flow[{flow.key}]"
    issues: list[Issue] = []
    if len(flow.nodes) > MAX_NODES_PER_FLOW:
        issues.append(Issue(path, f"more than {MAX_NODES_PER_FLOW} nodes"))
    if flow.default_language not in flow.languages:
        issues.append(Issue(path, f"default language '{flow.default_language}' is not declared"))
    if flow.start not in flow.nodes:
        issues.append(Issue(path, f"start node '{flow.start}' does not exist"))
    malformed = set()
    for node in flow.nodes.values():
        where = f"{path} node[{node.id}]"
        kind = KINDS.get(node.kind)
        if kind is None:
            issues.append(Issue(where, f"unknown type '{node.kind}' (known: {', '.join(KINDS)})"))
            malformed.add(node.id)
            continue
        shape = kind.check(flow, node, where)
        issues += shape
        if shape:
            malformed.add(node.id)
            continue
        for target in kind.targets(node):
            if target not in flow.nodes:
                issues.append(Issue(where, f"target '{target}' does not exist"))
        for key in kind.flow_targets(node):
            if key not in library.flows:
                issues.append(Issue(where, f"flow '{key}' does not exist"))
        for field, texts in kind.texts(node):
            if "*" in texts:
                continue
            for language in flow.languages:
                if not texts.get(language, "").strip():
                    issues.append(
                        Issue(f"{where} lang[{language}]", f"missing translation of '{field}'")
                    )
        issues += _shadowed_keywords(node, library, where)
        if node.spec.get("review"):
            issues.append(Issue(where, "text marked for review by this deployment", error=False))
    issues += _unreachable(flow, path)
    issues += _budgets(flow, path, budgets, malformed)
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
        Issue(f"{path} node[{node_id}]", "unreachable from the start node")
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
                        f"keyword '{word}' is the global '{role}' keyword and never reaches here",
                        error=False,
                    )
                )
    return issues


def _budgets(flow: Flow, path: str, budgets: list[Budget], malformed: set[str]) -> list[Issue]:
    """Render every static reply (a node alone, and a message followed by what it leads to)."""
    issues = []
    nodes = [n for n in flow.nodes.values() if n.id not in malformed]
    for language, budget in ((lang, b) for lang in flow.languages for b in budgets):
        samples: dict[str, list[str]] = {}
        for node in nodes:
            for template in KINDS[node.kind].screens(flow, node, language, budget):
                samples.setdefault(node.id, []).append(template)
        for node in nodes:
            if node.kind == "message":
                chain = _chain(flow, node, language, malformed, budget)
                if chain:
                    samples.setdefault(node.id, []).append(chain)
        for node_id, templates in samples.items():
            for template in templates:
                text = fill(template, _Samples())
                if not budget.fits(text):
                    issues.append(
                        Issue(
                            f"{path} node[{node_id}] lang[{language}]", _over_budget(text, budget)
                        )
                    )
    return issues


def _chain(
    flow: Flow, node: Node, language: str, malformed: set[str], budget: Budget
) -> str | None:
    """The one SMS a run of message nodes and the node it ends on become."""
    parts, current, seen = [], node, set()
    while current.kind == "message" and current.id not in seen:
        seen.add(current.id)
        parts.append(flow.text(texts_of(current.spec["text"]) or {}, language))
        target = current.spec.get("next")
        if not isinstance(target, str) or target not in flow.nodes or target in malformed:
            return "\n".join(parts) if len(parts) > 1 else None
        current = flow.nodes[target]
    screens = KINDS[current.kind].screens(flow, current, language, budget)
    if current.kind != "message" and screens:
        parts.append(screens[0])
    return "\n".join(parts) if len(parts) > 1 else None


def _over_budget(text: str, budget: Budget) -> str:
    from flows.encoding import sms_cost

    if budget.max_chars is not None:
        return f"{budget.channel} screen is {len(text)} characters; the limit is {budget.max_chars}"
    cost = sms_cost(text)
    return (
        f"reply is {cost.segments} SMS segments ({cost.encoding}, {cost.units} units);"
        f" the limit is {budget.max_segments}"
    )


class _Samples(dict[str, str]):
    def get(self, key: str, default: object = None) -> str:
        return SAMPLE_VALUE


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
                    f"variable '{name}' is used before any path sets it",
                )
            )
    return issues

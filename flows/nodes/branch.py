"""``branch``: go to the first case whose condition holds on the variables, else ``default``."""

from __future__ import annotations

from typing import Any

from flows.context import Context, Next, Outcome
from flows.model import Flow, Issue, Node
from flows.nodes.base import NodeKind, register
from flows.translatable import Text

OPERATORS = ("eq", "ne", "in", "empty", "not_empty", "gt", "lt")


def holds(condition: dict[str, Any], values: dict[str, Any]) -> bool:
    value = values.get(condition["var"])
    if "eq" in condition:
        return str(value) == str(condition["eq"])
    if "ne" in condition:
        return str(value) != str(condition["ne"])
    if "in" in condition:
        return str(value) in {str(v) for v in condition["in"]}
    if "empty" in condition:
        return value in (None, "", [])
    if "not_empty" in condition:
        return value not in (None, "", [])
    try:
        if "gt" in condition:
            return float(value) > float(condition["gt"])  # type: ignore[arg-type]
        if "lt" in condition:
            return float(value) < float(condition["lt"])  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return False


@register
class BranchNode(NodeKind):
    name = "branch"
    required = ("cases", "default")
    text_fields = ()
    target_fields = ("default",)
    example = """
route_by_danger:
  type: branch
  cases:
    - if: {var: in_danger, eq: "yes"}
      goto: emergency
  default: ask_category
"""

    def check(self, flow: Flow, node: Node, path: str) -> list[Issue]:
        issues = super().check(flow, node, path)
        cases = node.spec.get("cases", [])
        if not isinstance(cases, list):
            return [*issues, Issue(path, Text("'cases' must be a list"))]
        for i, case in enumerate(cases, 1):
            cond = case.get("if") if isinstance(case, dict) else None
            if not isinstance(cond, dict) or "var" not in cond or "goto" not in case:
                issues.append(
                    Issue(f"{path} case[{i}]", Text("a case needs 'if: {var: ...}' and 'goto'"))
                )
            elif not any(op in cond for op in OPERATORS):
                issues.append(
                    Issue(
                        f"{path} case[{i}]",
                        Text("use one of %(operators)s", operators=", ".join(OPERATORS)),
                    )
                )
        return issues

    def _cases(self, node: Node) -> list[dict[str, Any]]:
        cases = node.spec.get("cases")
        return [c for c in cases if isinstance(c, dict)] if isinstance(cases, list) else []

    def targets(self, node: Node) -> list[str]:
        return super().targets(node) + [c["goto"] for c in self._cases(node) if "goto" in c]

    def uses(self, node: Node) -> list[str]:
        return [
            c["if"]["var"]
            for c in self._cases(node)
            if isinstance(c.get("if"), dict) and "var" in c["if"]
        ]

    def enter(self, ctx: Context) -> Outcome:
        values = ctx.values()
        for case in self._cases(ctx.node):
            if holds(case["if"], values):
                return Next(case["goto"])
        return Next(ctx.node.spec["default"])

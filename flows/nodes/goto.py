"""``goto``: continue in another flow, at its start node."""

from __future__ import annotations

from flows.context import Context, EnterFlow, Outcome
from flows.model import Flow, Issue, Node
from flows.nodes.base import NodeKind, register
from flows.translatable import Text


@register
class GotoNode(NodeKind):
    name = "goto"
    required = ("flow",)
    text_fields = ()
    target_fields = ()
    example = """
to_help:
  type: goto
  flow: ask_help
"""

    def check(self, flow: Flow, node: Node, path: str) -> list[Issue]:
        issues = super().check(flow, node, path)
        if "flow" in node.spec and not isinstance(node.spec["flow"], str):
            issues.append(Issue(path, Text("'flow' must be a flow key")))
        return issues

    def flow_targets(self, node: Node) -> list[str]:
        return [node.spec["flow"]] if isinstance(node.spec.get("flow"), str) else []

    def enter(self, ctx: Context) -> Outcome:
        return EnterFlow(ctx.node.spec["flow"])

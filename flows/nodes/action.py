"""``action``: run a named Python action, save its value, route on its outcome."""

from __future__ import annotations

from flows.actions import ACTIONS
from flows.context import Context, Next, Outcome
from flows.model import Flow, Issue, Node
from flows.nodes.base import NodeKind, register
from flows.text import fill, variables_in
from flows.translatable import Text


@register
class ActionNode(NodeKind):
    name = "action"
    required = ("action", "next")
    text_fields = ()
    example = """
search:
  type: action
  action: find_services
  args: {municipality: "{municipality}", category: "{category}"}
  save_as: found
  routes: {none: no_services}
  next: show_services
"""

    def check(self, flow: Flow, node: Node, path: str) -> list[Issue]:
        issues = super().check(flow, node, path)
        known = ACTIONS.get(str(node.spec.get("action")))
        if known is None:
            return [
                *issues,
                Issue(
                    path, Text("unknown action %(action)s", action=repr(node.spec.get("action")))
                ),
            ]
        args = node.spec.get("args") or {}
        for name in known.args:
            if name not in args:
                issues.append(
                    Issue(
                        path,
                        Text(
                            "action %(action)s needs the argument '%(name)s'",
                            action=known.name,
                            name=name,
                        ),
                    )
                )
        for outcome in node.spec.get("routes") or {}:
            if outcome not in known.outcomes:
                issues.append(
                    Issue(
                        path,
                        Text(
                            "action %(action)s has no outcome '%(outcome)s'",
                            action=known.name,
                            outcome=outcome,
                        ),
                    )
                )
        return issues

    def targets(self, node: Node) -> list[str]:
        on = node.spec.get("routes") or {}
        return super().targets(node) + [t for t in on.values() if isinstance(t, str)]

    def sets(self, node: Node) -> list[str]:
        known = ACTIONS.get(str(node.spec.get("action")))
        return super().sets(node) + list(known.sets if known else ())

    def uses(self, node: Node) -> list[str]:
        args = node.spec.get("args") or {}
        return [v for template in args.values() for v in variables_in(str(template))]

    def enter(self, ctx: Context) -> Outcome:
        spec = ctx.node.spec
        args = {k: fill(str(v), ctx.values()) for k, v in (spec.get("args") or {}).items()}
        result = ACTIONS[spec["action"]].run(ctx, args)
        ctx.variables.update(result.variables)
        if isinstance(spec.get("save_as"), str):
            ctx.variables[spec["save_as"]] = result.value
        target = (spec.get("routes") or {}).get(result.outcome, spec["next"])
        return Next(target)

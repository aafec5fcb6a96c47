"""``end``: close the conversation, optionally with a last text."""

from __future__ import annotations

from flows.context import Context, End, Outcome
from flows.model import Node
from flows.nodes.base import NodeKind, register


@register
class EndNode(NodeKind):
    name = "end"
    target_fields = ()
    example = """
bye:
  type: end
  text: {es: "Gracias. Envie HOLA para volver.", en: "Thank you. Send HELLO to start again."}
"""

    def targets(self, node: Node) -> list[str]:
        return []

    def enter(self, ctx: Context) -> Outcome:
        if "text" in ctx.node.spec:
            ctx.say(ctx.render(ctx.node.spec["text"]))
        return End()

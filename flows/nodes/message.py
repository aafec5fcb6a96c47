"""``message``: send a text and go on."""

from __future__ import annotations

from flows.context import Context, Outcome
from flows.nodes.base import NodeKind, register


@register
class MessageNode(NodeKind):
    name = "message"
    required = ("text",)
    example = """
greet:
  type: message
  text: {es: "Bienvenida a Ruta.", en: "Welcome to Ruta."}
  next: main_menu
"""

    def enter(self, ctx: Context) -> Outcome:
        ctx.say(ctx.render(ctx.node.spec["text"]))
        return self.next_or_end(ctx.node)

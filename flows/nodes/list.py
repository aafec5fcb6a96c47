"""``list``: show a list variable (services found) a page at a time, 9 or MAS for more."""

from __future__ import annotations

from flows.context import Context, Outcome, Wait
from flows.model import Flow, Node
from flows.nodes.base import NodeKind, register
from flows.text import fold

MAX_ITEMS_PER_PAGE = 3
MORE_NUMBER = "9"


@register
class ListNode(NodeKind):
    name = "list"
    waits = True
    required = ("items", "text")
    text_fields = ("text", "footer")
    example = """
show_services:
  type: list
  items: found
  text: {es: "Servicios:", en: "Services:"}
  footer: {es: "HOLA: menu", en: "HELLO: menu"}
"""

    def uses(self, node: Node) -> list[str]:
        return [node.spec["items"]] if isinstance(node.spec.get("items"), str) else []

    def screens(self, flow: Flow, node: Node, language: str) -> list[str]:
        return []  # items come from the directory at run time and are paged to the budget

    def _page(self, ctx: Context, items: list[str], start: int) -> tuple[str, int]:
        """The text of the page starting at ``start`` and where the next page starts."""
        header = ctx.render(ctx.node.spec["text"]) if start == 0 else ""
        footer = ctx.render(ctx.node.spec["footer"]) if "footer" in ctx.node.spec else ""
        more = f"{MORE_NUMBER} {ctx.message('more')}"

        def compose(chunk: list[str], last: bool) -> str:
            return "\n".join(p for p in [header, *chunk, footer if last else more] if p)

        end = start + 1
        while end < len(items) and end - start < MAX_ITEMS_PER_PAGE:
            last = end + 1 == len(items)
            if not ctx.budget.fits(compose(items[start : end + 1], last)):
                break
            end += 1
        return compose(items[start:end], end == len(items)), end

    def _show(self, ctx: Context) -> Outcome:
        items = [str(i) for i in ctx.variables.get(ctx.node.spec["items"]) or []]
        text, end = self._page(ctx, items, ctx.scratch.get("start", 0))
        ctx.say(text)
        if end >= len(items):
            return self.next_or_end(ctx.node)
        ctx.scratch["start"] = end
        return Wait()

    def enter(self, ctx: Context) -> Outcome:
        ctx.scratch["start"] = 0
        return self._show(ctx)

    def resume(self, ctx: Context, text: str) -> Outcome:
        more_words = {fold(w) for w in ctx.settings.keywords.get("more", [])}
        if fold(text) == MORE_NUMBER or fold(text) in more_words:
            return self._show(ctx)
        ctx.say(ctx.message("list_hint"))
        return Wait()

"""``list``: show a list variable (services found) a page at a time within the budget.

On SMS, 9 (or MAS) brings the next page. On USSD a screen vanishes when the session ends, so the
list shows what fits and offers the whole list by SMS (``1``), sent once the session is over.
"""

from __future__ import annotations

from flows.context import Budget, Context, End, Outcome, Wait
from flows.model import Flow, Node
from flows.nodes.base import NodeKind, register
from flows.text import fold, fold_known

MAX_ITEMS_PER_PAGE = 3
SMS_OFFER_NUMBER = "1"


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

    def screens(self, flow: Flow, node: Node, language: str, budget: Budget) -> list[str]:
        return []  # items come from the directory at run time and are paged to the budget

    def _items(self, ctx: Context) -> list[str]:
        return [str(i) for i in ctx.variables.get(ctx.node.spec["items"]) or []]

    def _page(self, ctx: Context, items: list[str], start: int, tail: str) -> tuple[str, int]:
        """The text of the page starting at ``start``, ending with ``tail`` (or the footer on
        the last page), and where the next page starts."""
        header = ctx.render(ctx.node.spec["text"]) if start == 0 else ""
        footer = ctx.render(ctx.node.spec["footer"]) if "footer" in ctx.node.spec else ""

        def compose(chunk: list[str], last: bool) -> str:
            return "\n".join(p for p in [header, *chunk, footer if last else tail] if p)

        end = start + 1
        while end < len(items) and end - start < MAX_ITEMS_PER_PAGE:
            if not ctx.fits(compose(items[start : end + 1], end + 1 == len(items))):
                break
            end += 1
        return compose(items[start:end], end == len(items)), end

    def _show(self, ctx: Context) -> Outcome:
        items = self._items(ctx)
        more = f"{ctx.budget.more_number} {ctx.message('more')}"
        text, end = self._page(ctx, items, ctx.scratch.get("start", 0), more)
        ctx.say(text)
        if end >= len(items):
            return self.next_or_end(ctx.node)
        ctx.scratch["start"] = end
        return Wait()

    def _offer_sms(self, ctx: Context) -> Outcome:
        items = self._items(ctx)
        header = ctx.render(ctx.node.spec["text"])
        offer = f"{SMS_OFFER_NUMBER} {ctx.message('sms_offer')}"
        shown: list[str] = []
        for item in items:
            cut = len(items) - len(shown) - 1
            rest = [f"(+{cut})"] if cut else []
            if not ctx.fits("\n".join([header, *shown, item, *rest, offer])):
                break
            shown.append(item)
        hidden = len(items) - len(shown)
        lines = [header, *shown, *([f"(+{hidden})"] if hidden else []), offer]
        ctx.say("\n".join(line for line in lines if line))
        return Wait()

    def enter(self, ctx: Context) -> Outcome:
        ctx.scratch["start"] = 0
        if ctx.budget.channel == "ussd":
            return self._offer_sms(ctx)
        return self._show(ctx)

    def resume(self, ctx: Context, text: str) -> Outcome:
        word = fold(text)
        if ctx.budget.channel == "ussd":
            if word != SMS_OFFER_NUMBER:
                ctx.say(ctx.message("invalid_option"))
                return self._offer_sms(ctx)
            full = "\n".join([ctx.render(ctx.node.spec["text"]), *self._items(ctx)])
            ctx.emit("sms_requested", text=full)
            ctx.say(ctx.message("sms_coming"))
            return End()
        more_words = {fold_known(w) for w in ctx.settings.keywords.get("more", [])}
        if word == ctx.budget.more_number or word in more_words:
            return self._show(ctx)
        ctx.say(ctx.message("list_hint"))
        return Wait()

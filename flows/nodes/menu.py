"""``menu``: numbered options; an option is chosen by its number, its label or a keyword.

Static menus list ``options``. Dynamic ones take their options from ``options_action`` (a named
action run at each showing, so a language switch relabels them) or ``options_from`` (a variable
holding ``{value, label}`` items), and are paged to fit the channel's budget, with 9 for "more".
"""

from __future__ import annotations

from typing import Any

from flows.actions import ACTIONS
from flows.context import Budget, Context, Next, Outcome, Wait
from flows.model import MAX_MENU_OPTIONS, Flow, Issue, Node, Texts
from flows.nodes.base import NodeKind, register, texts_of
from flows.text import fold


def _keywords(option: dict[str, Any], language: str) -> list[str]:
    words = option.get("keywords") or []
    if isinstance(words, dict):
        words = list(words.get(language, [])) + [w for ws in words.values() for w in ws]
    return [fold(str(w)) for w in words]


@register
class MenuNode(NodeKind):
    name = "menu"
    waits = True
    required = ("text",)
    target_fields = ("next",)
    example = """
main_menu:
  type: menu
  text: {es: "Ruta. Responda con un numero:", en: "Ruta. Reply with a number:"}
  save_as: choice
  options:
    - label: {es: "Buscar servicios", en: "Find services"}
      keywords: {es: [servicios], en: [services]}
      goto: find
    - label: {es: "Pedir ayuda", en: "Ask for help"}
      goto: help
"""

    def check(self, flow: Flow, node: Node, path: str) -> list[Issue]:
        issues = super().check(flow, node, path)
        spec = node.spec
        sources = [k for k in ("options", "options_from", "options_action") if k in spec]
        if len(sources) != 1:
            issues.append(
                Issue(path, "a menu needs one of 'options', 'options_from', 'options_action'")
            )
        if "options_action" in spec and spec["options_action"] not in ACTIONS:
            issues.append(Issue(path, f"unknown action {spec['options_action']!r}"))
        options = spec.get("options")
        if options is not None:
            if not isinstance(options, list) or not 1 <= len(options) <= MAX_MENU_OPTIONS:
                issues.append(Issue(path, f"a menu has 1 to {MAX_MENU_OPTIONS} options a page"))
                options = options if isinstance(options, list) else []
            for i, option in enumerate(options, 1):
                where = f"{path} option[{i}]"
                if not isinstance(option, dict) or texts_of(option.get("label")) is None:
                    issues.append(Issue(where, "an option needs a 'label' per language"))
                elif "goto" not in option and "next" not in spec:
                    issues.append(Issue(where, "an option needs 'goto' (or the menu a 'next')"))
        elif "next" not in spec:
            issues.append(Issue(path, "a menu with dynamic options needs 'next'"))
        return issues

    def _static(self, node: Node) -> list[dict[str, Any]]:
        options = node.spec.get("options")
        return options if isinstance(options, list) else []

    def targets(self, node: Node) -> list[str]:
        found = super().targets(node)
        found += [o["goto"] for o in self._static(node) if isinstance(o, dict) and "goto" in o]
        return found

    def texts(self, node: Node) -> list[tuple[str, Texts]]:
        found = super().texts(node)
        for i, option in enumerate(self._static(node), 1):
            label = texts_of(option.get("label")) if isinstance(option, dict) else None
            if label is not None:
                found.append((f"option[{i}].label", label))
        return found

    def sets(self, node: Node) -> list[str]:
        return [f"{v}_label" for v in super().sets(node)] + super().sets(node)

    def uses(self, node: Node) -> list[str]:
        source = node.spec.get("options_from")
        return [source] if isinstance(source, str) else []

    def screens(self, flow: Flow, node: Node, language: str, budget: Budget) -> list[str]:
        if "options" not in node.spec:
            return []  # dynamic menus are paged to the budget at run time
        labels = [flow.text(o["label"], language) for o in self._static(node)]
        header = flow.text(node.spec["text"], language)
        if budget.max_chars is None:  # an SMS menu must fit whole: paging costs a message
            return [self._render(header, labels, None)]
        # USSD pages menus itself: each page must hold the question, an option and "more".
        longest = max(labels, key=len, default="")
        return [self._render(header, [longest], f"{budget.more_number} {'X' * 8}")]

    # running

    def _options(self, ctx: Context) -> list[tuple[str, str, dict[str, Any]]]:
        """(value, label, option) for every option in the person's language."""
        spec = ctx.node.spec
        if "options_action" in spec:
            items = ACTIONS[spec["options_action"]].run(ctx, {}).value or []
            return [(str(i["value"]), str(i["label"]), {}) for i in items]
        if "options_from" in spec:
            items = ctx.variables.get(spec["options_from"]) or []
            return [(str(i["value"]), str(i["label"]), {}) for i in items]
        return [
            (str(o.get("value", n)), ctx.render(o["label"]), o)
            for n, o in enumerate(self._static(ctx.node), 1)
        ]

    @staticmethod
    def _render(header: str, labels: list[str], more: str | None) -> str:
        lines = [header] + [f"{n} {label}" for n, label in enumerate(labels, 1)]
        if more:
            lines.append(more)
        return "\n".join(lines)

    @staticmethod
    def _more_line(ctx: Context) -> str:
        return f"{ctx.budget.more_number} {ctx.message('more')}"

    def _pages(self, ctx: Context, labels: list[str]) -> list[tuple[int, int]]:
        """Split options into (start, end) pages that fit the budget, with a "more" line.

        Computed when the menu is first shown (the first page shares its reply with any text
        said before it) and kept, so the numbers a person sees keep their meaning."""
        stored = ctx.scratch.get("pages")
        if stored and stored[-1][1] == len(labels):
            return [(int(p[0]), int(p[1])) for p in stored]
        header, more = ctx.render(ctx.node.spec["text"]), self._more_line(ctx)
        # "9 more" on SMS leaves 8 options a page; USSD's "98 more" leaves all nine.
        cap = MAX_MENU_OPTIONS - 1 if ctx.budget.more_number == "9" else MAX_MENU_OPTIONS
        pages: list[tuple[int, int]] = []
        start = 0
        while start < len(labels):
            rest = labels[start:]
            fits = ctx.fits if not pages else ctx.budget.fits
            if len(rest) <= MAX_MENU_OPTIONS and fits(self._render(header, rest, None)):
                pages.append((start, len(labels)))
                break
            end = start + 1
            while (
                end < len(labels)
                and end - start < cap
                and fits(self._render(header, labels[start : end + 1], more))
            ):
                end += 1
            pages.append((start, end))
            start = end
        pages = pages or [(0, 0)]
        ctx.scratch["pages"] = [list(p) for p in pages]
        return pages

    def _show(self, ctx: Context) -> None:
        labels = [label for _, label, _ in self._options(ctx)]
        pages = self._pages(ctx, labels)
        page = min(ctx.scratch.get("page", 0), len(pages) - 1)
        start, end = pages[page]
        more = self._more_line(ctx) if page < len(pages) - 1 else None
        ctx.say(self._render(ctx.render(ctx.node.spec["text"]), labels[start:end], more))

    def previous_page(self, ctx: Context) -> bool:
        """Back from a later page goes to the page before, not to the previous question."""
        if ctx.scratch.get("page", 0) <= 0:
            return False
        ctx.scratch["page"] -= 1
        self._show(ctx)
        return True

    def enter(self, ctx: Context) -> Outcome:
        ctx.scratch["page"] = 0
        ctx.scratch.pop("pages", None)
        if not self._options(ctx):
            ctx.say(ctx.message("nothing_to_choose"))
            return self.next_or_end(ctx.node)
        self._show(ctx)
        return Wait()

    def resume(self, ctx: Context, text: str) -> Outcome:
        options = self._options(ctx)
        labels = [label for _, label, _ in options]
        pages = self._pages(ctx, labels)
        page = min(ctx.scratch.get("page", 0), len(pages) - 1)
        start, end = pages[page]
        word = fold(text)
        chosen: int | None = None
        has_more = page < len(pages) - 1
        if word.isdigit():
            number = int(word)
            if has_more and word == ctx.budget.more_number:
                ctx.scratch["page"] = page + 1
                self._show(ctx)
                return Wait()
            if 1 <= number <= end - start:
                chosen = start + number - 1
        else:
            if has_more and word in {fold(w) for w in ctx.settings.keywords.get("more", [])}:
                ctx.scratch["page"] = page + 1
                self._show(ctx)
                return Wait()
            for index, (_value, label, option) in enumerate(options):
                if word and (word == fold(label) or word in _keywords(option, ctx.language)):
                    chosen = index
                    break
        if chosen is None:
            ctx.say(ctx.message("invalid_option"))
            self._show(ctx)
            return Wait()
        value, label, option = options[chosen]
        save_as = ctx.node.spec.get("save_as")
        if isinstance(save_as, str):
            ctx.variables[save_as] = value
            ctx.variables[f"{save_as}_label"] = label
        target = option.get("goto") or ctx.node.spec.get("next")
        return Next(target) if target else self.next_or_end(ctx.node)

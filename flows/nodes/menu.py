"""``menu``: numbered options; an option is chosen by its number, its label or a keyword.

Static menus list ``options``. Dynamic ones take their options from ``options_action`` (a named
action run at each showing, so a language switch relabels them) or ``options_from`` (a variable
holding ``{value, label}`` items). Any menu too long for one page is paged, with 9 for "more"
on every channel; pages are the same on SMS and USSD.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from flows.actions import ACTIONS
from flows.context import Budget, Context, Next, Outcome, Wait
from flows.model import MAX_MENU_OPTIONS, Flow, Issue, Node, Texts
from flows.nodes.base import NodeKind, help_text, layout_help, register, texts_of
from flows.text import fold, fold_known, to_gsm7
from flows.translatable import Text


def layout(
    labels: list[str], more: str, room: int, fits: Callable[[str], bool] = lambda _: True
) -> list[tuple[int, int]]:
    """(start, end) pages of numbered ``labels``, each within ``room`` characters (and ``fits``)
    with ``more`` after all but the last; at most nine options a page, eight with "more"."""

    def size(chunk: list[str], with_more: bool) -> int:
        lines = [f"{n} {label}" for n, label in enumerate(chunk, 1)]
        text = "\n".join([*lines, *([more] if with_more else [])])
        return len(text) if fits(text) else room + 1

    pages: list[tuple[int, int]] = []
    start = 0
    while start < len(labels):
        rest = labels[start:]
        if len(rest) <= MAX_MENU_OPTIONS and size(rest, False) <= room:
            pages.append((start, len(labels)))
            break
        end = start + 1  # one option a page at least, however long: the validator names it
        while (
            end < len(labels)
            and end - start < MAX_MENU_OPTIONS - 1
            and size(labels[start : end + 1], True) <= room
        ):
            end += 1
        pages.append((start, end))
        start = end
    return pages or [(0, 0)]


@lru_cache(maxsize=512)
def _paged(
    labels: tuple[str, ...], more: str, room: int, budget: Budget
) -> tuple[tuple[int, int], ...]:
    """``layout`` of a menu's labels leaving ``room`` characters for what comes before them:
    the same few menus are shown again and again, each split worked out once per process."""
    reserve = "x" * room + "\n"
    # Only an SMS budget tighter than a page (one segment, accents kept) changes the split.
    return tuple(
        layout(
            list(labels),
            more,
            budget.page_chars - len(reserve),
            lambda text: budget.fits(reserve + text),
        )
    )


def _keywords(option: dict[str, Any], language: str) -> list[str]:
    words = option.get("keywords") or []
    if isinstance(words, dict):
        words = list(words.get(language, [])) + [w for ws in words.values() for w in ws]
    return [fold_known(str(w)) for w in words]


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
                Issue(
                    path,
                    Text("a menu needs one of 'options', 'options_from', 'options_action'"),
                )
            )
        if "options_action" in spec and spec["options_action"] not in ACTIONS:
            issues.append(
                Issue(path, Text("unknown action %(action)s", action=repr(spec["options_action"])))
            )
        options = spec.get("options")
        if options is not None:
            if not isinstance(options, list) or not 1 <= len(options) <= MAX_MENU_OPTIONS:
                issues.append(
                    Issue(path, Text("a menu has 1 to %(n)s options a page", n=MAX_MENU_OPTIONS))
                )
                options = options if isinstance(options, list) else []
            for i, option in enumerate(options, 1):
                where = f"{path} option[{i}]"
                if not isinstance(option, dict) or texts_of(option.get("label")) is None:
                    issues.append(Issue(where, Text("an option needs a 'label' per language")))
                elif "goto" not in option and "next" not in spec:
                    issues.append(
                        Issue(where, Text("an option needs 'goto' (or the menu a 'next')"))
                    )
        elif "next" not in spec:
            issues.append(Issue(path, Text("a menu with dynamic options needs 'next'")))
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
        return []  # every page is rendered through ``rendered`` with real options

    def rendered(self, ctx: Context) -> list[str]:
        """Every reply this menu can send: each page alone, after what leads into it, after
        an answer that is not an option and after the help keyword."""
        options = self._options(ctx)
        if not options:
            return [ctx.message("nothing_to_choose")]
        pages = self._pages(ctx, [label for _, label, _ in options])
        lead = self._lead(ctx)
        notices = [ctx.message("invalid_option"), help_text(ctx)]
        found = []
        for page in range(len(pages)):
            ctx.scratch["page"] = page
            for before in [[], *([[lead]] if lead and page == 0 else []), *[[n] for n in notices]]:
                ctx.replies[:] = before
                self._show(ctx)
                found.append("\n".join(ctx.replies))
        ctx.replies.clear()
        ctx.scratch.clear()
        return found

    # running

    def _options(self, ctx: Context) -> list[tuple[str, str, dict[str, Any]]]:
        """(value, label, option) for every option in the person's language; on a channel that
        wants plain labels, names in GSM-7 letters (typed with accents, they still match).
        Worked out once a visit: entering or answering a menu shows it again."""
        key = ("menu options", ctx.language)
        if key not in ctx.memo:
            ctx.memo[key] = self._options_now(ctx)
        return ctx.memo[key]

    def _options_now(self, ctx: Context) -> list[tuple[str, str, dict[str, Any]]]:
        spec = ctx.node.spec
        found: list[tuple[str, str, dict[str, Any]]]
        if "options_action" in spec:
            items = ACTIONS[spec["options_action"]].run(ctx, {}).value or []
            found = [(str(i["value"]), str(i["label"]), {}) for i in items]
        elif "options_from" in spec:
            items = ctx.variables.get(spec["options_from"]) or []
            found = [(str(i["value"]), str(i["label"]), {}) for i in items]
        else:
            found = [
                (str(o.get("value", n)), ctx.render(o["label"]), o)
                for n, o in enumerate(self._static(ctx.node), 1)
            ]
        if ctx.budget.plain_labels:
            return [(value, to_gsm7(label), option) for value, label, option in found]
        return found

    @staticmethod
    def _lines(labels: list[str], more: str | None) -> list[str]:
        lines = [f"{n} {label}" for n, label in enumerate(labels, 1)]
        return [*lines, more] if more else lines

    @staticmethod
    def _more_line(ctx: Context) -> str:
        return f"{ctx.budget.more_number} {ctx.message('more')}"

    def _lead(self, ctx: Context) -> str:
        """The longest run of message texts that can lead into this menu in its flow (the
        emergency numbers before "what kind of help"), as they read now."""
        flow, longest = ctx.flow, ""

        def walk(target: str, after: str, seen: frozenset[str]) -> None:
            nonlocal longest
            for node in flow.nodes.values():
                if node.kind != "message" or node.spec.get("next") != target or node.id in seen:
                    continue
                text = ctx.render(texts_of(node.spec.get("text")) or {})
                chain = f"{text}\n{after}" if after else text
                longest = max(longest, chain, key=len)
                walk(node.id, chain, seen | {node.id})

        walk(ctx.node.id, "", frozenset())
        return longest

    def _pages(self, ctx: Context, labels: list[str]) -> list[tuple[int, int]]:
        """Split options into (start, end) pages, with a "more" line on all but the last.

        The split depends only on the menu, never on the channel or on what is said around it,
        so a number keeps its meaning: after the help keyword, after an answer that is not an
        option, and on SMS and USSD alike. Each page leaves room for the question with whatever
        leads into it, or for a notice (which then takes the question's place)."""
        stored = ctx.scratch.get("pages")
        if stored and stored[-1][1] == len(labels):
            return [(int(p[0]), int(p[1])) for p in stored]
        header = ctx.render(ctx.node.spec["text"])
        lead = self._lead(ctx)
        room = max(
            len(f"{lead}\n{header}" if lead else header),
            len(ctx.message("invalid_option")),
            len(layout_help(ctx)),
        )
        pages = _paged(tuple(labels), self._more_line(ctx), room, ctx.budget)
        ctx.scratch["pages"] = [list(p) for p in pages]
        return list(pages)

    def _show(self, ctx: Context) -> None:
        labels = [label for _, label, _ in self._options(ctx)]
        pages = self._pages(ctx, labels)
        page = min(ctx.scratch.get("page", 0), len(pages) - 1)
        start, end = pages[page]
        more = self._more_line(ctx) if page < len(pages) - 1 else None
        lines = self._lines(labels[start:end], more)
        whole = "\n".join([ctx.render(ctx.node.spec["text"]), *lines])
        # After a notice (help, an answer that was not an option) the notice stands in for the
        # question when both do not fit: the options and their numbers never move.
        ctx.say(whole if not ctx.replies or ctx.fits(whole) else "\n".join(lines))

    def previous_page(self, ctx: Context) -> bool:
        """Back from a later page goes to the page before, not to the previous question."""
        if ctx.scratch.get("page", 0) <= 0:
            return False
        ctx.scratch["page"] -= 1
        self._show(ctx)
        return True

    def redisplay(self, ctx: Context) -> Outcome:
        """Show the page the person was on again (after the help keyword)."""
        if not self._options(ctx):
            return self.enter(ctx)
        self._show(ctx)
        return Wait()

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
            if has_more and word in {fold_known(w) for w in ctx.settings.keywords.get("more", [])}:
                ctx.scratch["page"] = page + 1
                self._show(ctx)
                return Wait()
            for index, (_value, label, option) in enumerate(options):
                if word and (word == fold_known(label) or word in _keywords(option, ctx.language)):
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

"""``ask``: wait for an answer, check it, save it; re-ask on a bad answer, give up after N."""

from __future__ import annotations

from flows.context import Budget, Context, End, Next, Outcome, Wait
from flows.model import Flow, Issue, Node, Texts
from flows.nodes.base import NodeKind, help_text, register, texts_of
from flows.translatable import Text
from flows.validators import CHECKS, YES_NO

DEFAULT_MAX_ATTEMPTS = 3
#: The keys of the yes/no prompt every yes/no question shows ("1 Si", "2 No").
YES_NO_DIGITS = {"1": "yes", "2": "no"}


@register
class AskNode(NodeKind):
    name = "ask"
    waits = True
    required = ("text", "save_as", "next")
    text_fields = ("text", "error")
    target_fields = ("next", "on_fail")
    example = """
ask_age:
  type: ask
  text: {es: "Cuantos anos tiene?", en: "How old are you?"}
  save_as: age
  validate: {type: number, min: 0, max: 120}
  error: {es: "Escriba solo un numero.", en: "Please send a number only."}
  max_attempts: 3
  on_fail: bye
  next: thanks
"""

    def check(self, flow: Flow, node: Node, path: str) -> list[Issue]:
        issues = super().check(flow, node, path)
        rule = node.spec.get("validate", {"type": "text"})
        kind = rule.get("type") if isinstance(rule, dict) else None
        if kind not in CHECKS:
            issues.append(
                Issue(
                    path,
                    Text("'validate.type' must be one of %(types)s", types=", ".join(CHECKS)),
                )
            )
        if kind == "yes_no":
            for language in flow.languages:
                if language not in YES_NO:
                    issues.append(Issue(f"{path} lang[{language}]", Text("no yes/no words known")))
        if kind == "choice" and not isinstance(rule.get("choices"), dict):
            issues.append(Issue(path, Text("a choice needs 'choices': value -> words")))
        return issues

    def texts(self, node: Node) -> list[tuple[str, Texts]]:
        return [(f, t) for f in self.text_fields if (t := texts_of(node.spec.get(f))) is not None]

    def screens(self, flow: Flow, node: Node, language: str, budget: Budget) -> list[str]:
        return []  # rendered through ``rendered``, with the channel's yes/no prompt

    def rendered(self, ctx: Context) -> list[str]:
        """The question, and what follows an answer it cannot take and the help keyword."""
        found = []
        for notice in (None, self._error(ctx), help_text(ctx)):
            ctx.replies[:] = [notice] if notice else []
            self._ask(ctx)
            found.append("\n".join(ctx.replies))
        ctx.replies.clear()
        return found

    # running

    @staticmethod
    def _prompt(ctx: Context) -> str | None:
        """How to answer a yes/no question on this channel: "1 Si / 2 No" on a keypad, "SI
        (1) o NO (2)" by SMS. The digits are taken only because this line shows them."""
        rule = ctx.node.spec.get("validate") or {}
        if not isinstance(rule, dict) or rule.get("type") != "yes_no":
            return None
        return ctx.message("yes_no_ussd" if ctx.budget.channel == "ussd" else "yes_no_sms")

    def _question(self, ctx: Context) -> str:
        prompt = self._prompt(ctx)
        question = ctx.render(ctx.node.spec["text"])
        return f"{question}\n{prompt}" if prompt else question

    def _error(self, ctx: Context) -> str:
        error = ctx.node.spec.get("error")
        return ctx.render(error) if error else ctx.message("invalid_answer")

    def _ask(self, ctx: Context) -> None:
        """The question, after any notice already said; when both do not fit, the question
        alone (what to answer matters more than why it is asked again)."""
        question = self._question(ctx)
        if ctx.replies and not ctx.fits(question):
            ctx.replies.clear()
        ctx.say(question)

    def enter(self, ctx: Context) -> Outcome:
        ctx.scratch["attempts"] = 0
        ctx.say(self._question(ctx))
        return Wait()

    def redisplay(self, ctx: Context) -> Outcome:
        self._ask(ctx)
        return Wait()

    def resume(self, ctx: Context, text: str) -> Outcome:
        spec = ctx.node.spec
        rule = spec.get("validate", {"type": "text"})
        value = CHECKS[rule["type"]](text, rule, ctx.language)
        if self._prompt(ctx) is not None and text.strip() in YES_NO_DIGITS:
            value = YES_NO_DIGITS[text.strip()]
        if value is not None:
            ctx.variables[spec["save_as"]] = value
            return Next(spec["next"])
        ctx.scratch["attempts"] = ctx.scratch.get("attempts", 0) + 1
        if ctx.scratch["attempts"] >= int(spec.get("max_attempts", DEFAULT_MAX_ATTEMPTS)):
            if "on_fail" in spec:
                return Next(spec["on_fail"])
            ctx.say(ctx.message("too_many_attempts"))
            return End()
        ctx.say(self._error(ctx))
        self._ask(ctx)
        return Wait()

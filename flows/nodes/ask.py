"""``ask``: wait for an answer, check it, save it; re-ask on a bad answer, give up after N."""

from __future__ import annotations

from flows.context import Budget, Context, End, Next, Outcome, Wait
from flows.model import Flow, Issue, Node, Texts
from flows.nodes.base import NodeKind, register, texts_of
from flows.validators import CHECKS, YES_NO

DEFAULT_MAX_ATTEMPTS = 3


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
            issues.append(Issue(path, f"'validate.type' must be one of {', '.join(CHECKS)}"))
        if kind == "yes_no":
            for language in flow.languages:
                if language not in YES_NO:
                    issues.append(Issue(f"{path} lang[{language}]", "no yes/no words known"))
        if kind == "choice" and not isinstance(rule.get("choices"), dict):
            issues.append(Issue(path, "a choice needs 'choices': value -> words"))
        return issues

    def texts(self, node: Node) -> list[tuple[str, Texts]]:
        return [(f, t) for f in self.text_fields if (t := texts_of(node.spec.get(f))) is not None]

    def screens(self, flow: Flow, node: Node, language: str, budget: Budget) -> list[str]:
        question = flow.text(node.spec["text"], language)
        error = node.spec.get("error")
        return [question] + ([flow.text(error, language) + "\n" + question] if error else [])

    def enter(self, ctx: Context) -> Outcome:
        ctx.scratch["attempts"] = 0
        ctx.say(ctx.render(ctx.node.spec["text"]))
        return Wait()

    def resume(self, ctx: Context, text: str) -> Outcome:
        spec = ctx.node.spec
        rule = spec.get("validate", {"type": "text"})
        value = CHECKS[rule["type"]](text, rule, ctx.language)
        if value is not None:
            ctx.variables[spec["save_as"]] = value
            return Next(spec["next"])
        ctx.scratch["attempts"] = ctx.scratch.get("attempts", 0) + 1
        if ctx.scratch["attempts"] >= int(spec.get("max_attempts", DEFAULT_MAX_ATTEMPTS)):
            if "on_fail" in spec:
                return Next(spec["on_fail"])
            ctx.say(ctx.message("too_many_attempts"))
            return End()
        error = spec.get("error")
        ctx.say(ctx.render(error) if error else ctx.message("invalid_answer"))
        ctx.say(ctx.render(spec["text"]))
        return Wait()

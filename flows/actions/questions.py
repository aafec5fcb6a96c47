"""Question action: leave a person's question for a human, who answers by SMS (journey 6)."""

from __future__ import annotations

from flows.actions import ActionResult, action
from flows.context import Context


@action("ask_question", sets=("reference",), outcomes=("ok", "empty"), args=("text",))
def ask_question(ctx: Context, args: dict[str, str]) -> ActionResult:
    text = args["text"].strip()
    if not text:
        return ActionResult(outcome="empty", variables={"reference": ""})
    reference = ctx.services.ask_question(text, ctx.language)
    ctx.emit("question_asked")
    return ActionResult(variables={"reference": reference})

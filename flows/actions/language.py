"""Language action: switch the conversation (and the contact) to another language."""

from __future__ import annotations

from flows.actions import ActionResult, action
from flows.context import Context


@action("set_language", outcomes=("ok", "unknown"), args=("language",))
def set_language(ctx: Context, args: dict[str, str]) -> ActionResult:
    language = args["language"]
    if language not in ctx.settings.languages:
        return ActionResult(outcome="unknown")
    ctx.language = language
    ctx.emit("contact_language_changed", language=language)
    return ActionResult()

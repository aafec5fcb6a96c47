"""Alert actions: the topics to choose from, subscribing, and a person's subscriptions to leave."""

from __future__ import annotations

from flows.actions import ActionResult, action
from flows.context import Context

#: The value of the "leave them all" option of the leave menu.
ALL = "all"
ALL_LABELS = {"es": "Todos", "en": "All of them"}


@action("list_alert_topics")
def list_alert_topics(ctx: Context, args: dict[str, str]) -> ActionResult:
    choices = ctx.services.alert_topics(ctx.language)
    return ActionResult(value=[{"value": c.value, "label": c.label} for c in choices])


@action("subscribe", outcomes=("ok", "unknown"), args=("municipality", "topic"))
def subscribe(ctx: Context, args: dict[str, str]) -> ActionResult:
    """Subscribe the person, in the conversation's language; ``unknown`` for a stale choice."""
    if not ctx.services.subscribe(args["municipality"], args["topic"], ctx.language):
        return ActionResult(outcome="unknown")
    ctx.emit("subscribed", municipality=args["municipality"], topic=args["topic"])
    return ActionResult()


@action("my_alerts", outcomes=("ok", "none"))
def my_alerts(ctx: Context, args: dict[str, str]) -> ActionResult:
    """The person's active subscriptions as menu items; with ``with_all: "yes"`` a last item
    leaves them all. ``none`` when there are none."""
    items = [{"value": c.value, "label": c.label} for c in ctx.services.subscriptions(ctx.language)]
    if not items:
        return ActionResult(outcome="none", value=[])
    if args.get("with_all") == "yes" and len(items) > 1:
        label = ALL_LABELS.get(ctx.language, ALL_LABELS["en"])
        items.append({"value": ALL, "label": label})
    return ActionResult(value=items)


@action("unsubscribe", outcomes=("ok", "none"), args=("subscription",))
def unsubscribe(ctx: Context, args: dict[str, str]) -> ActionResult:
    """End one subscription (a value from ``my_alerts``) or all of them."""
    which = args["subscription"]
    ended = ctx.services.unsubscribe(which) if which else 0
    if not ended:
        return ActionResult(outcome="none")
    ctx.emit("unsubscribed", count=ended)
    return ActionResult()

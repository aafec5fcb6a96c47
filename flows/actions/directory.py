"""Directory actions: the choices for menus and the services found."""

from __future__ import annotations

from flows.actions import ActionResult, action
from flows.context import Context


@action("list_municipalities")
def list_municipalities(ctx: Context, args: dict[str, str]) -> ActionResult:
    choices = ctx.services.municipalities(ctx.language)
    return ActionResult(value=[{"value": c.value, "label": c.label} for c in choices])


@action("list_other_municipalities")
def list_other_municipalities(ctx: Context, args: dict[str, str]) -> ActionResult:
    choices = ctx.services.other_municipalities(ctx.language)
    return ActionResult(value=[{"value": c.value, "label": c.label} for c in choices])


@action("list_categories")
def list_categories(ctx: Context, args: dict[str, str]) -> ActionResult:
    choices = ctx.services.categories(ctx.language)
    return ActionResult(value=[{"value": c.value, "label": c.label} for c in choices])


@action("find_services", outcomes=("ok", "none"), args=("municipality", "category"))
def find_services(ctx: Context, args: dict[str, str]) -> ActionResult:
    found = ctx.services.find_services(args["municipality"], args["category"], ctx.language)
    return ActionResult(outcome="ok" if found else "none", value=found)

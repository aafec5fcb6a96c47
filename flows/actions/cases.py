"""Case actions: who would receive a request, store it and hand back its reference, the person's
open request and its updates; emergency numbers."""

from __future__ import annotations

from flows.actions import ActionResult, action
from flows.context import Context
from flows.services import CaseRequest

#: Answers to the safe-times question that mean "do not contact me".
NO_CONTACT = "never"
YES_NO = {"yes": True, "no": False}


@action(
    "route_request",
    sets=("first_office",),
    outcomes=("ok", "nobody"),
    args=("municipality", "category", "safe"),
)
def route_request(ctx: Context, args: dict[str, str]) -> ActionResult:
    """Resolve who would receive the request before anything is promised or asked."""
    routing = ctx.services.route(
        args["municipality"], args["category"] or "other", args.get("safe") != "no"
    )
    if routing is None:
        return ActionResult(outcome="nobody", variables={"first_office": ""})
    return ActionResult(variables={"first_office": routing.first})


@action(
    "create_case",
    sets=("reference",),
    outcomes=("ok", "nobody"),
    args=("category", "safe", "consent", "consent_wording"),
)
def create_case(ctx: Context, args: dict[str, str]) -> ActionResult:
    """Open the person's case, or complete their open one. Arguments not yet answered are empty.
    ``nobody``: the routing changed since it was checked and reaches nobody now."""
    safe_times = args.get("safe_times") or None
    reference = ctx.services.create_case(
        CaseRequest(
            category=args["category"] or "other",
            municipality=args.get("municipality") or None,
            safe=args.get("safe") != "no",
            consent=args.get("consent") == "yes",
            consent_wording=f"{ctx.flow.key}:v{ctx.flow.version}:{args['consent_wording']}",
            channel=ctx.budget.channel,
            description=args.get("description") or None,
            shared_phone=YES_NO.get(args.get("shared_phone", "")),
            safe_times=safe_times,
            contact_ok=args.get("consent") == "yes" and safe_times not in (None, NO_CONTACT),
        )
    )
    if reference is None:
        return ActionResult(outcome="nobody", variables={"reference": ""})
    ctx.emit("case_opened", reference=reference)
    return ActionResult(variables={"reference": reference})


@action("open_request", sets=("reference", "request_state"), outcomes=("open", "none"))
def open_request(ctx: Context, args: dict[str, str]) -> ActionResult:
    """The person's open request, so a second "ask for help" updates it instead of starting
    another that would drop their new answers."""
    found = ctx.services.open_request(ctx.language)
    if found is None:
        return ActionResult(outcome="none", variables={"reference": "", "request_state": ""})
    return ActionResult(
        outcome="open", variables={"reference": found.reference, "request_state": found.state}
    )


@action("update_request", sets=("reference",), outcomes=("ok", "none"))
def update_request(ctx: Context, args: dict[str, str]) -> ActionResult:
    """Update how the person may be contacted (``shared_phone``, ``safe_times``) or add a
    ``note`` to their open request; each a case event."""
    reference = ctx.services.update_request(
        shared_phone=YES_NO.get(args.get("shared_phone", "")),
        safe_times=args.get("safe_times") or None,
        note=args.get("note") or None,
    )
    if reference is None:
        return ActionResult(outcome="none", variables={"reference": ""})
    return ActionResult(variables={"reference": reference})


@action("emergency_numbers", sets=("emergency_numbers",))
def emergency_numbers(ctx: Context, args: dict[str, str]) -> ActionResult:
    numbers = ctx.services.emergency_numbers(ctx.language)
    return ActionResult(variables={"emergency_numbers": numbers})

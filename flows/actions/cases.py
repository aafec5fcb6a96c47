"""Case actions: store a request for help and hand back its reference; emergency numbers."""

from __future__ import annotations

from flows.actions import ActionResult, action
from flows.context import Context
from flows.services import CaseRequest

#: Answers to the safe-times question that mean "do not contact me".
NO_CONTACT = "never"


@action(
    "create_case",
    sets=("reference",),
    args=("category", "safe", "consent", "consent_wording"),
)
def create_case(ctx: Context, args: dict[str, str]) -> ActionResult:
    """Open the person's case, or complete their open one. Arguments not yet answered are empty."""
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
            shared_phone={"yes": True, "no": False}.get(args.get("shared_phone", "")),
            safe_times=safe_times,
            contact_ok=args.get("consent") == "yes" and safe_times not in (None, NO_CONTACT),
        )
    )
    ctx.emit("case_opened", reference=reference)
    return ActionResult(variables={"reference": reference})


@action("emergency_numbers", sets=("emergency_numbers",))
def emergency_numbers(ctx: Context, args: dict[str, str]) -> ActionResult:
    return ActionResult(variables={"emergency_numbers": ctx.services.emergency_numbers()})

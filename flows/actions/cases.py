"""Case actions: store a request for help and hand back its reference."""

from __future__ import annotations

from flows.actions import ActionResult, action
from flows.context import Context
from flows.services import CaseRequest


@action(
    "create_case",
    sets=("reference",),
    args=("category", "municipality", "safe", "consent", "consent_wording"),
)
def create_case(ctx: Context, args: dict[str, str]) -> ActionResult:
    reference = ctx.services.create_case(
        CaseRequest(
            category=args["category"],
            municipality=args.get("municipality") or None,
            urgency="immediate" if args.get("safe") == "no" else "standard",
            consent=args.get("consent") == "yes",
            consent_wording=f"{ctx.flow.key}:v{ctx.flow.version}:{args['consent_wording']}",
            description=args.get("description") or None,
            channel=ctx.budget.channel,
        )
    )
    ctx.emit("case_created", reference=reference)
    return ActionResult(variables={"reference": reference})

"""Named Python actions that flows call with an ``action`` node.

An action reaches the world only through ``ctx.services`` (see ``flows.services``). Each declares
the variables it sets and the outcomes it can return, so the validator can check flows that use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flows.context import Context


@dataclass
class ActionResult:
    outcome: str = "ok"
    value: Any = None
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Action:
    name: str
    run: Callable[[Context, dict[str, str]], ActionResult]
    sets: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ("ok",)
    args: tuple[str, ...] = ()


ACTIONS: dict[str, Action] = {}


def action(
    name: str,
    *,
    sets: tuple[str, ...] = (),
    outcomes: tuple[str, ...] = ("ok",),
    args: tuple[str, ...] = (),
) -> Callable[[Callable[[Context, dict[str, str]], ActionResult]], Action]:
    def register(fn: Callable[[Context, dict[str, str]], ActionResult]) -> Action:
        ACTIONS[name] = Action(name, fn, sets, outcomes, args)
        return ACTIONS[name]

    return register


from flows.actions import (  # noqa: E402,F401  (registers the actions)
    alerts,
    cases,
    directory,
    language,
    questions,
)

"""Walk every screen a person can reach: from the main menu, every option of every menu page,
"more", the help keyword, an answer that is not one of the options, and every kind of answer to a
question, through the real engine over the database's directory.

States are told apart by where the conversation waits (flow, node, page) and by the directory
choices made so far (place, kind of help, topic, safe or not), so each place and each kind is
followed to the end once; once a request is routed, by the office that receives it instead,
which is all the later questions show.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flows.context import Budget
from flows.engine import ContactView, Engine
from flows.services import Services

#: Variables that change what later screens show (a place's services, a chain's office).
CHOICES = ("municipality", "category", "topic", "safe")
START = {"es": "HOLA", "en": "HELLO"}
HELP = {"es": "AYUDA", "en": "HELP"}
NOT_AN_OPTION = "77"
#: Words a person may answer a question with.
ANSWERS = {"es": ["si", "no", "1", "2", "necesito un medico"], "en": ["yes", "no", "1", "2"]}


@dataclass(frozen=True)
class Screen:
    path: tuple[str, ...]  # what was sent, from the start
    text: str  # the reply, as it would be sent


def _key(state: dict[str, Any]) -> tuple[Any, ...]:
    scratch = state.get("scratch") or {}
    variables = state["vars"]
    names = ("first_office", "safe") if variables.get("first_office") else CHOICES
    chosen = tuple(str(variables.get(name)) for name in names)
    return (state["flow"], state["node"], scratch.get("page"), scratch.get("start"), chosen)


def _inputs(engine: Engine, state: dict[str, Any], language: str, budget: Budget) -> list[str]:
    node = engine.library.get(state["flow"], state["pins"].get(state["flow"])).nodes[state["node"]]
    help_word = HELP[language]
    if node.kind == "menu":
        return [str(n) for n in range(1, 10)] + [budget.more_number, help_word, NOT_AN_OPTION]
    if node.kind == "ask":
        return [*ANSWERS[language], help_word, "quizas"]
    if node.kind == "list":
        return [budget.more_number, "1", help_word, NOT_AN_OPTION]
    return [help_word]


def walk(
    engine: Engine,
    services: Callable[[], Services],
    budget: Budget,
    language: str,
    *,
    limit: int = 20000,
) -> list[Screen]:
    """Every reply reachable from the main menu, each with the inputs that led to it."""
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    contact = ContactView(language=language)
    first = engine.step(None, contact, START[language], services=services(), budget=budget, now=now)
    screens = [Screen((START[language],), first.text)]
    queue: deque[tuple[dict[str, Any], tuple[str, ...]]] = deque()
    seen: set[tuple[Any, ...]] = set()
    if first.state is not None:
        queue.append((first.state, (START[language],)))
        seen.add(_key(first.state))
    steps = 0
    while queue and steps < limit:
        state, path = queue.popleft()
        for text in _inputs(engine, state, language, budget):
            steps += 1
            out = engine.step(state, contact, text, services=services(), budget=budget, now=now)
            screens.append(Screen((*path, text), out.text))
            nxt = out.state
            if nxt is None or nxt.get("ended") or nxt.get("pending"):
                continue
            key = _key(nxt)
            if key not in seen:
                seen.add(key)
                queue.append((nxt, (*path, text)))
    assert steps < limit, "the walk did not finish"
    now += timedelta(seconds=1)
    return screens

"""Flow examples as tests: each flow file may carry conversations and what replies must hold.

``ruta flows test`` runs them all through the real engine; the admin runs them before publishing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flows.context import Budget
from flows.engine import ContactView, Engine
from flows.model import Example
from flows.services import Services
from flows.text import fold


@dataclass
class ExampleResult:
    flow: str
    example: str
    failures: list[str] = field(default_factory=list)
    transcript: list[tuple[str, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def run_example(
    engine: Engine, flow_key: str, example: Example, services: Services, budget: Budget
) -> ExampleResult:
    result = ExampleResult(flow_key, example.name)
    state = None
    contact = ContactView(language=example.language)
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    for number, step in enumerate(example.steps, 1):
        out = engine.step(state, contact, step.send, services=services, budget=budget, now=now)
        now += timedelta(seconds=30)
        state = out.state
        for event in out.events:
            if event.kind == "contact_language_changed":
                contact = ContactView(event.data["language"], contact.opted_out)
            elif event.kind in ("contact_opted_out", "contact_erase_requested"):
                contact = ContactView(contact.language, True)
            elif event.kind == "contact_opted_in":
                contact = ContactView(contact.language, False)
        result.transcript.append((step.send, out.text))
        reply = fold(out.text)
        for wanted in step.expect:
            if fold(wanted) not in reply:
                result.failures.append(
                    f"step {number} ({step.send!r}): reply lacks {wanted!r}; it was {out.text!r}"
                )
        for unwanted in step.expect_not:
            if fold(unwanted) in reply:
                result.failures.append(
                    f"step {number} ({step.send!r}): reply holds {unwanted!r}; it was {out.text!r}"
                )
    return result


def run_all(engine: Engine, services: Services, budget: Budget) -> list[ExampleResult]:
    return [
        run_example(engine, flow.key, example, services, budget)
        for flow in engine.library.latest()
        for example in flow.examples
    ]

"""The flow engine: pure. It takes a session state, a contact view and an inbound text, and returns
the replies, the new state and events for the host to persist (goflow's shape). No I/O happens
here except through the ``Services`` the host injects for actions.

Global keywords (restart, back, help, language, opt-out and opt-in) are read before the flow.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flows.context import (
    Budget,
    Context,
    End,
    EnterFlow,
    Event,
    Next,
    Outcome,
    Wait,
    channel_words,
)
from flows.model import MAX_STEPS_PER_MESSAGE, Library
from flows.nodes import KINDS
from flows.nodes.base import help_text
from flows.services import Services
from flows.text import clean_input, fill, fold

DEFAULT_SESSION_TIMEOUT = timedelta(minutes=30)
#: What separates several texts the engine produced for one inbound message, in one SMS.
REPLY_SEPARATOR = "\n"


@dataclass(frozen=True)
class ContactView:
    language: str | None
    opted_out: bool = False


@dataclass
class StepResult:
    replies: list[str]
    state: dict[str, Any] | None
    events: list[Event] = field(default_factory=list)

    @property
    def text(self) -> str:
        return REPLY_SEPARATOR.join(self.replies)

    def has(self, kind: str) -> bool:
        return any(e.kind == kind for e in self.events)


class Engine:
    def __init__(
        self, library: Library, *, session_timeout: timedelta = DEFAULT_SESSION_TIMEOUT
    ) -> None:
        self.library = library
        self.session_timeout = session_timeout
        settings = library.settings
        self._words = {role: {fold(w) for w in words} for role, words in settings.keywords.items()}

    def is_keyword(self, role: str, text: str) -> bool:
        return fold(clean_input(text)) in self._words.get(role, set())

    def step(
        self,
        state: dict[str, Any] | None,
        contact: ContactView,
        text: str | None,
        *,
        services: Services,
        budget: Budget,
        now: datetime,
        owned: bool = False,
    ) -> StepResult:
        """Advance one conversation by one inbound message. ``state`` is left as it was, unless
        ``owned``: the caller hands it over (parsed for this step alone) to be changed in place."""
        text = clean_input(text)
        word = fold(text)
        settings = self.library.settings
        kept = state if owned else _copied(state)
        run = _Run(self, kept if state else None, services, budget, now)

        def role(name: str) -> bool:
            return word in self._words.get(name, set())

        if role("erase"):  # also when opted out: erasing is always possible
            language = (state or {}).get("lang") or contact.language or settings.default_language
            reply = settings.message("erased", language)
            return StepResult([reply], None, [Event("contact_erase_requested")])
        if contact.opted_out:
            if not role("opt_in"):
                return StepResult([], state, [Event("ignored_while_opted_out")])
            run.events.append(Event("contact_opted_in"))
            run.language = contact.language or settings.default_language
            run.replies.append(settings.message("opted_in", run.language))
            run.start()
        elif role("opt_out"):
            language = (state or {}).get("lang") or contact.language or settings.default_language
            reply = settings.message("opted_out", language)
            return StepResult([reply], None, [Event("contact_opted_out")])
        elif run.state is None or run.state.get("ended"):
            run.language = self._language_for_new(contact, word, run)
            run.start(self._entry(word))
        elif now - datetime.fromisoformat(run.state["last"]) > self.session_timeout:
            run.language = run.state.get("lang") or settings.default_language
            run.events.append(Event("session_expired"))
            run.replies.append(settings.message("expired", run.language))
            run.start(self._entry(word))
        else:
            run.language = run.state.get("lang") or settings.default_language
            if role("restart"):
                run.start()
            elif self._entry(word):
                run.start(self._entry(word))
            elif run.state.get("pending") == "language":
                run.choose_language(word)
            elif role("help"):
                run.help()
            elif role("language"):
                run.show_language_menu()
            elif role("back"):
                run.back()
            else:
                run.resume(text)
        return run.result()

    def redisplay(
        self,
        state: dict[str, Any],
        contact: ContactView,
        *,
        services: Services,
        budget: Budget,
        now: datetime,
    ) -> StepResult:
        """Show again the question the conversation is waiting on (a USSD session resumed)."""
        run = _Run(self, _copied(state), services, budget, now)
        run.language = (
            state.get("lang") or contact.language or self.library.settings.default_language
        )
        run.reenter()
        return run.result()

    def _entry(self, word: str) -> str | None:
        """The flow a flow keyword (``ALERTAS``) enters, if that flow is loaded."""
        key = self.library.settings.flow_keywords.get(word)
        return key if key is not None and key in self.library.flows else None

    def _language_for_new(self, contact: ContactView, word: str, run: _Run) -> str:
        settings = self.library.settings
        if contact.language:
            return contact.language
        hinted = settings.keyword_language.get(word)
        if hinted:
            run.events.append(Event("contact_language_changed", {"language": hinted}))
            return hinted
        return settings.default_language


def _copied(value: Any) -> Any:
    """A copy of a state (JSON: dicts, lists, strings, numbers), which a step must not change
    in the caller's hands; ``copy.deepcopy``'s bookkeeping cost a tenth of a step."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copied(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return copy.deepcopy(value)


class _Run:
    """One step's working state: where the conversation is and what it has produced."""

    def __init__(
        self,
        engine: Engine,
        state: dict[str, Any] | None,
        services: Services,
        budget: Budget,
        now: datetime,
    ) -> None:
        self.engine = engine
        self.library = engine.library
        self.state = state
        self.services = services
        self.budget = budget
        self.now = now
        self.language = self.library.settings.default_language
        self.replies: list[str] = []
        self.events: list[Event] = []

    # state

    def start(self, entry: str | None = None) -> None:
        """Begin the main flow afresh, pinning the versions current now; with ``entry`` (a flow
        keyword's flow) go straight into that flow, ``0`` leading back to the main menu."""
        main = self.library.current(self.library.settings.main_flow)
        self.state = {
            "flow": main.key,
            "node": main.start,
            "pins": {main.key: main.version},
            "vars": {},
            "scratch": {},
            "history": [],
            "pending": None,
            "started": self.now.isoformat(),
            "ended": False,
        }
        self.events.append(Event("flow_started", {"flow": main.key, "version": main.version}))
        if entry is not None and entry != main.key:
            self.state["history"].append([main.key, main.start])
            self.follow(EnterFlow(entry))
            return
        self.follow(Next(main.start))

    def result(self) -> StepResult:
        if self.state is not None:
            self.state["lang"] = self.language
            self.state["last"] = self.now.isoformat()
        return StepResult(self.replies, self.state, self.events)

    def _context(self) -> Context:
        assert self.state is not None
        flow = self.library.get(self.state["flow"], self.state["pins"].get(self.state["flow"]))
        return Context(
            flow=flow,
            node=flow.nodes[self.state["node"]],
            language=self.language,
            variables=self.state["vars"],
            scratch=self.state["scratch"],
            services=self.services,
            settings=self.library.settings,
            budget=self.budget,
            now=self.now,
            replies=self.replies,
            events=self.events,
        )

    def follow(self, outcome: Outcome) -> None:
        """Walk from ``outcome`` until a node waits for input or the conversation ends."""
        assert self.state is not None
        for _ in range(MAX_STEPS_PER_MESSAGE):
            if isinstance(outcome, Wait):
                here = [self.state["flow"], self.state["node"]]
                history = self.state["history"]
                if not history or history[-1] != here:
                    history.append(here)
                return
            if isinstance(outcome, End):
                self.state["ended"] = True
                self.events.append(Event("flow_ended"))
                return
            if isinstance(outcome, EnterFlow):
                flow = self.library.get(outcome.key, self.state["pins"].get(outcome.key))
                self.state["pins"].setdefault(flow.key, flow.version)
                self.state["flow"] = flow.key
                outcome = Next(flow.start)
                continue
            self.state["node"] = outcome.node
            self.state["scratch"] = {}
            ctx = self._context()
            outcome = KINDS[ctx.node.kind].enter(ctx)
            self.language = ctx.language  # an action may have switched it
        self.events.append(Event("loop_stopped", {"node": self.state["node"]}))
        words = channel_words(self.library.settings, self.language, self.budget)
        self.replies.append(fill(self.library.settings.message("error", self.language), words))
        self.state["ended"] = True

    def resume(self, text: str) -> None:
        ctx = self._context()
        kind = KINDS[ctx.node.kind]
        if not kind.waits:  # a published flow changed under a stored state: start clean
            self.start()
            return
        self.follow(kind.resume(ctx, text))

    def help(self) -> None:
        """The help text, then the same question and page: numbers keep their meaning."""
        assert self.state is not None
        self.state["pending"] = None
        ctx = self._context()
        ctx.say(help_text(ctx))
        self.follow(KINDS[ctx.node.kind].redisplay(ctx))

    def reenter(self) -> None:
        assert self.state is not None
        self.state["pending"] = None
        self.follow(Next(self.state["node"]))

    def back(self) -> None:
        assert self.state is not None
        ctx = self._context()
        previous_page = getattr(KINDS[ctx.node.kind], "previous_page", None)
        if previous_page is not None and previous_page(ctx):
            return
        history = self.state["history"]
        if len(history) >= 2:
            history.pop()
            self.state["flow"], self.state["node"] = history[-1]
        self.reenter()

    def show_language_menu(self) -> None:
        assert self.state is not None
        settings = self.library.settings
        lines = [settings.message("language_menu", self.language)]
        lines += [f"{n} {name}" for n, name in enumerate(settings.languages.values(), 1)]
        self.replies.append("\n".join(lines))
        self.state["pending"] = "language"

    def choose_language(self, word: str) -> None:
        codes = list(self.library.settings.languages)
        names = {fold(name): code for code, name in self.library.settings.languages.items()}
        chosen = None
        if word.isdigit() and 1 <= int(word) <= len(codes):
            chosen = codes[int(word) - 1]
        elif word in codes:
            chosen = word
        elif word in names:
            chosen = names[word]
        if chosen is None:
            self.replies.append(self.library.settings.message("invalid_option", self.language))
            self.show_language_menu()
            return
        self.language = chosen
        self.events.append(Event("contact_language_changed", {"language": chosen}))
        self.replies.append(self.library.settings.message("language_set", chosen))
        self.reenter()

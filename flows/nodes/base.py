"""The node-kind interface and registry: adding a kind of step is adding one module."""

from __future__ import annotations

from typing import Any, ClassVar

from flows.context import Budget, Context, Outcome
from flows.model import Flow, Issue, Node, Texts
from flows.translatable import Text

KINDS: dict[str, NodeKind] = {}


def register(cls: type[NodeKind]) -> type[NodeKind]:
    KINDS[cls.name] = cls()
    return cls


def help_text(ctx: Context) -> str:
    """What the help keyword answers on this channel: on USSD, where keywords are hard to
    type, only how to choose and go back."""
    return ctx.message("help_ussd" if ctx.budget.channel == "ussd" else "help")


def layout_help(ctx: Context) -> str:
    """The help notice menu pages leave room for: USSD's, the shorter, on every channel, so
    pages are the same on both (an SMS has room for the longer one besides)."""
    return ctx.message("help_ussd")


def texts_of(value: Any) -> Texts | None:
    """A texts field: a mapping of language to string, or a bare string for every language."""
    if isinstance(value, str):
        return {"*": value}
    if (
        isinstance(value, dict)
        and value
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    ):
        return dict(value)
    return None


class NodeKind:
    """One kind of node. ``example`` is a YAML example of itself, used in docs and fixtures."""

    name: ClassVar[str]
    waits: ClassVar[bool] = False  # does it stop and wait for the person's answer?
    example: ClassVar[str]
    required: ClassVar[tuple[str, ...]] = ()
    text_fields: ClassVar[tuple[str, ...]] = ("text",)
    target_fields: ClassVar[tuple[str, ...]] = ("next",)

    def check(self, flow: Flow, node: Node, path: str) -> list[Issue]:
        """Kind-specific shape checks (the common checks live in ``flows.validate``)."""
        issues = [
            Issue(
                path,
                Text("'%(field)s' is required for a %(kind)s node", field=field, kind=self.name),
            )
            for field in self.required
            if field not in node.spec
        ]
        for field in self.text_fields:
            if field in node.spec and texts_of(node.spec[field]) is None:
                issues.append(
                    Issue(path, Text("'%(field)s' must map language codes to texts", field=field))
                )
        return issues

    def targets(self, node: Node) -> list[str]:
        return [node.spec[f] for f in self.target_fields if isinstance(node.spec.get(f), str)]

    def flow_targets(self, node: Node) -> list[str]:
        return []

    def texts(self, node: Node) -> list[tuple[str, Texts]]:
        found = []
        for field in self.text_fields:
            texts = texts_of(node.spec.get(field))
            if texts is not None:
                found.append((field, texts))
        return found

    def sets(self, node: Node) -> list[str]:
        save_as = node.spec.get("save_as")
        return [save_as] if isinstance(save_as, str) else []

    def uses(self, node: Node) -> list[str]:
        """Variables read other than through ``{name}`` in texts (conditions, args)."""
        return []

    def screens(self, flow: Flow, node: Node, language: str, budget: Budget) -> list[str]:
        """Every reply this node can send by itself, as templates, for budget checks."""
        return [flow.text(t, language) for _, t in self.texts(node) if _ == "text"]

    def rendered(self, ctx: Context) -> list[str]:
        """Every reply this node can send, rendered with ``ctx``'s values and services."""
        return [ctx.render(t) for t in self.screens(ctx.flow, ctx.node, ctx.language, ctx.budget)]

    def enter(self, ctx: Context) -> Outcome:
        raise NotImplementedError

    def redisplay(self, ctx: Context) -> Outcome:
        """Show the node again where the person is (after the help keyword)."""
        return self.enter(ctx)

    def resume(self, ctx: Context, text: str) -> Outcome:
        raise NotImplementedError(f"{self.name} nodes do not wait for input")

    def next_or_end(self, node: Node) -> Outcome:
        from flows.context import End, Next

        target = node.spec.get("next")
        return Next(target) if isinstance(target, str) else End()

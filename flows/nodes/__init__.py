"""Node kinds, one per module, registered by name in ``KINDS``."""

from flows.nodes import action, ask, branch, end, goto, list, menu, message  # noqa: F401
from flows.nodes.base import KINDS, NodeKind

__all__ = ["KINDS", "NodeKind"]

"""Messages the domain writes in English and the admin shows in its reader's language.

The CLI prints a :class:`Text` as the English ``str`` it is; the admin looks its ``template`` up
in the catalogue and fills in the same ``params``. Nothing here imports Flask or Babel: the
templates are found by ``pybabel extract -k Text`` (README: "Translating the admin").
"""

from __future__ import annotations

from typing import Any


class Text(str):
    """``template % params`` in English, keeping both so it can be said in another language.

    A ``str`` so that code joining, comparing or printing messages is unchanged. Parameters are
    data (codes, names, numbers, the user's own values) and are never translated, except another
    :class:`Text`, which the admin translates in turn.
    """

    template: str
    params: dict[str, Any]

    def __new__(cls, template: str, /, **params: Any) -> Text:
        self = super().__new__(cls, template % params if params else template)
        self.template = template
        self.params = params
        return self


def said(message: str, gettext: Any) -> str:
    """``message`` in the language ``gettext`` speaks; a plain ``str`` (an exception's own words,
    a library's) as it is."""
    if not isinstance(message, Text):
        return message
    template = gettext(message.template)
    if not message.params:
        return template
    params = {k: said(v, gettext) if isinstance(v, str) else v for k, v in message.params.items()}
    try:
        return template % params
    except (KeyError, TypeError, ValueError):  # a catalogue entry that lost a placeholder
        return str(message)


def reason_of(exc: BaseException) -> str:
    """What an exception raised with a :class:`Text` says, still a :class:`Text`."""
    first = exc.args[0] if len(exc.args) == 1 else None
    return first if isinstance(first, Text) else str(exc)

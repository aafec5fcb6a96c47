"""Bulk sending for broadcasts: Africa's Talking takes many recipients in one API call.

``AfricasTalkingBulkSender.send_many`` makes ONE ``SMSService.send(message, [numbers])`` call
through the official SDK and returns one outcome per recipient, in order. Same protection rule
as senders.py: no error carries a number or a body.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import requests
from africastalking.Service import AfricasTalkingException

from providers.senders import (
    AT_PERMANENT_CODES,
    AT_SUCCESS_CODES,
    AfricasTalkingSender,
    SendError,
    SendResult,
    _optional,
    _require,
)

__all__ = ["AfricasTalkingBulkSender", "Outcome", "build_bulk_sender"]

Outcome = SendResult | SendError
_E164 = re.compile(r"^\+\d{4,15}$")


class AfricasTalkingBulkSender(AfricasTalkingSender):
    """The single sender's SDK setup, plus many recipients of one text per call; ``calls``
    counts the SDK calls made."""

    def __init__(self, *args: Any, timeout: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, timeout=timeout, **kwargs)
        self.calls = 0

    def send_many(self, recipients: Sequence[str], body: str) -> list[Outcome]:
        """Send ``body`` to every recipient in one API call; one outcome per recipient."""
        outcomes: list[Outcome | None] = [None] * len(recipients)
        valid: list[int] = []
        for index, number in enumerate(recipients):
            if _E164.match(number):
                valid.append(index)
            else:  # the SDK refuses the whole call for one malformed number
                outcomes[index] = SendError(
                    "africastalking rejected the number format", permanent=True, code="403"
                )
        if valid:
            answers = self._call([recipients[i] for i in valid], body)
            for index in valid:
                outcomes[index] = answers.get(recipients[index]) or SendError(
                    "africastalking answered without this recipient",
                    permanent=False,
                    code="no_recipient",
                )
        return [o for o in outcomes if o is not None]

    def _call(self, numbers: list[str], body: str) -> dict[str, Outcome]:
        self.calls += 1
        try:
            answer = self._service.send(
                body, numbers, sender_id=self.sender_id, timeout=self.timeout
            )
        except ValueError:
            error = SendError(
                "africastalking rejected the number format", permanent=True, code="403"
            )
            return dict.fromkeys(numbers, error)
        except requests.RequestException as exc:
            error = SendError(
                f"africastalking request failed: {type(exc).__name__}", permanent=False
            )
            return dict.fromkeys(numbers, error)
        except AfricasTalkingException:
            error = SendError(
                "africastalking answered with an HTTP error", permanent=False, code="http_error"
            )
            return dict.fromkeys(numbers, error)
        return _parse(answer, numbers)


def _parse(answer: object, numbers: list[str]) -> dict[str, Outcome]:
    data = answer.get("SMSMessageData") if isinstance(answer, dict) else None
    entries = data.get("Recipients") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        error = SendError(
            "africastalking answered with a malformed body", permanent=False, code="bad_response"
        )
        return dict.fromkeys(numbers, error)
    outcomes: dict[str, Outcome] = {}
    for entry in entries:
        if isinstance(entry, dict) and entry.get("number"):
            outcomes[str(entry["number"])] = _outcome(entry)
    return outcomes


def _outcome(entry: Mapping[str, Any]) -> Outcome:
    try:
        status_code = int(entry.get("statusCode", -1))
    except (TypeError, ValueError):
        status_code = -1
    status = str(entry.get("status", ""))
    message_id = entry.get("messageId")
    if status_code in AT_SUCCESS_CODES and message_id and message_id != "None":
        return SendResult(
            provider="africastalking", provider_message_id=str(message_id), status=status
        )
    return SendError(
        f"africastalking rejected the message (statusCode {status_code} {status})",
        permanent=status_code in AT_PERMANENT_CODES,
        code=str(status_code),
    )


def build_bulk_sender(config: Mapping[str, Any]) -> AfricasTalkingBulkSender:
    username, api_key = _require(config, "AT_USERNAME", "AT_API_KEY")
    return AfricasTalkingBulkSender(
        username,
        api_key,
        sender_id=_optional(config, "AT_SENDER_ID"),
        api_base_url=_optional(config, "AT_API_BASE_URL"),
    )

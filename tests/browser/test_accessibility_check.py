"""The accessibility check itself can fail: axe-core finds a page's serious violations."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import axe_violations


def test_axe_reports_an_image_without_text_and_a_field_without_label(page: Any) -> None:
    page.set_content(
        '<html lang="en"><head><title>t</title></head><body><main>'
        '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="><input type="text">'
        "</main></body></html>"
    )
    rules = {violation["rule"] for violation in axe_violations(page)}
    assert {"image-alt", "label"} <= rules

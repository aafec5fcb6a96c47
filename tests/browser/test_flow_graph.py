"""The flow graph in a real browser, in Spanish and in English: boxes named by their first
words, zoomed and moved with the keyboard (buttons), the mouse wheel and a drag."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import assert_accessible, log_in, shot

WORDS = {
    "es": {"zoom_in": "Ampliar", "right": "Mover a la derecha", "whole": "Flujo completo"},
    "en": {"zoom_in": "Zoom in", "right": "Move right", "whole": "Whole flow"},
}


def view(page: Any) -> list[float]:
    return [float(n) for n in page.get_attribute("#flow-graph svg", "viewBox").split()]


def test_the_flow_graph_zooms_and_pans(page: Any, accounts: dict[str, str], language: str) -> None:
    words = WORDS[language]
    log_in(page, accounts["flow_editor"])
    page.wait_for_url("**/admin/")
    page.goto("/admin/flows/ask_help/graph")
    # The boxes say what the person reads, in the page's language; ids are in the titles only.
    existing = page.locator('#flow-graph g.node[data-node="existing"]')
    label = existing.locator("text").first.text_content() or ""
    start = "Ya tiene" if language == "es" else "You already"
    assert label.startswith(start) and "existing" not in label
    assert "flow[rights]" not in page.content()  # another flow's warnings are not listed
    whole = view(page)
    box = page.locator("#flow-graph").bounding_box()
    assert box is not None and box["width"] <= page.viewport_size["width"]  # not cut off
    assert_accessible(page)

    # Keyboard only: Tab to "Zoom in", Enter twice; then "Move right".
    page.get_by_role("button", name=words["zoom_in"]).focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    zoomed = view(page)
    assert zoomed[2] < whole[2] * 0.6 and zoomed[3] < whole[3] * 0.6
    page.keyboard.press("Tab")  # Zoom out
    page.keyboard.press("Tab")  # Whole flow
    page.keyboard.press("Tab")  # Move left
    page.keyboard.press("Tab")  # Move right
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == words["right"]
    page.keyboard.press("Enter")
    moved = view(page)
    assert moved[0] > zoomed[0] and moved[2] == zoomed[2]
    shot(page, f"flow-graph-zoomed-{language}")
    assert_accessible(page)

    # The mouse: the wheel zooms in where the pointer is, a drag moves the view.
    middle = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*middle)
    page.mouse.wheel(0, -300)
    page.wait_for_function(
        f"document.querySelector('#flow-graph svg').viewBox.baseVal.width < {moved[2]}"
    )
    before_drag = view(page)
    page.mouse.down()
    page.mouse.move(middle[0] - 120, middle[1], steps=5)
    page.mouse.up()
    dragged = view(page)
    assert dragged[0] > before_drag[0] and dragged[2] == before_drag[2]
    page.get_by_role("button", name=words["whole"]).click()
    assert view(page) == whole


def test_every_page_of_flows_and_directory_passes_axe(
    page: Any, accounts: dict[str, str], language: str
) -> None:
    """The lists, the editor and the import pages, as an admin sees them."""
    log_in(page, accounts["admin"])
    page.wait_for_url("**/admin/")
    for url in (
        "/admin/flows/",
        "/admin/flows/main",
        "/admin/flows/main/edit",
        "/admin/flows/main/source/1",
        "/admin/flows/main/diff/1/1",
        "/admin/directory/",
        "/admin/directory/organizations",
        "/admin/directory/organizations/1",
        "/admin/directory/locations",
        "/admin/directory/locations/1",
        "/admin/directory/municipalities",
        "/admin/directory/municipalities/1",
        "/admin/directory/categories",
        "/admin/directory/import",
    ):
        page.goto(url)
        assert page.locator("html").get_attribute("lang") == language
        assert_accessible(page)
    page.goto("/admin/flows/main/edit")
    page.get_by_role("button", name=WORDS[language]["zoom_in"]).click()
    shot(page, f"flow-editor-graph-{language}")

"""The figures in a real browser, in Spanish and in English: the charts drawn by the server (a
count below 5 hatched, never at its height), the tables beside them, and the CSV download with
the same suppression."""

from __future__ import annotations

import csv
import io
from typing import Any

from tests.admin.test_figures_admin import add_cases, kind_names
from tests.browser.conftest import assert_accessible, log_in, shot

WORDS = {
    "es": {"heading": "Cifras", "download": "Descargar esta tabla (CSV)", "week": "Semana"},
    "en": {"heading": "Figures", "download": "Download this table (CSV)", "week": "Week"},
}


def test_the_figures_with_a_chart_and_a_download(
    page: Any, accounts: dict[str, str], language: str
) -> None:
    add_cases("health", 3)
    add_cases("documents", 7)
    words, names = WORDS[language], kind_names(language)
    log_in(page, accounts["admin"])
    page.wait_for_url("**/admin/")
    page.goto("/admin/figures/")
    assert page.locator("h1").inner_text() == words["heading"]
    assert page.locator("html").get_attribute("lang") == language
    # A chart per kind of help, named in the page's language, drawn as SVG by the server.
    health = page.locator('figure[data-category="health"] svg')
    assert names["health"] in (health.locator("title").first.text_content() or "")
    assert health.locator("g.bar.suppressed").count() >= 1  # 3 requests: hatched, no height
    assert health.locator("g.bar[data-value]").count() == 0
    documents = page.locator('figure[data-category="documents"] svg')
    assert documents.locator('g.bar[data-value="7"]').count() == 1
    box = documents.locator('g.bar[data-value="7"] rect').bounding_box()
    assert box is not None and box["height"] > 10  # drawn, and visible on the page
    assert page.locator("#chart-responses").is_visible()
    # The table stays beside the chart, for screen readers.
    heads = page.locator("#requests thead th").all_inner_texts()
    assert heads[0] == words["week"] and names["health"] in heads and names["documents"] in heads
    shot(page, f"figures-chart-{language}")
    assert_accessible(page)

    with page.expect_download() as waiting:
        page.get_by_role("link", name=words["download"]).first.click()
    download = waiting.value
    with open(download.path(), encoding="utf-8-sig") as downloaded:
        text = downloaded.read()
    rows = list(csv.reader(io.StringIO(text)))
    health_column = rows[0].index(names["health"])
    counted = [row[health_column] for row in rows[1:]]
    assert "<5" in counted and "3" not in counted

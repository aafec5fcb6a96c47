"""Cases in the admin: who sees which case, the case page, accept / reassign / close from the web,
revealing the number, and the audit log behind all of it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from admin.accounts import create_user
from providers.fake_provider import FakeProviderServer
from ruta.db import db
from ruta.models import AuditEntry, Case, FocalPoint, Message, MessagePurpose
from tests.admin.conftest import PASSWORD, csrf_token, login, open_forwarded_case
from tests.conftest import case_by_reference, case_events

SAMPLE_PERSON = "+50688004455"  # the sample_case fixture's person
BACKUP = "+50600001002"  # Respaldo Upala (demo), position 1 of Upala's chains


def open_case(
    municipality: str,
    number: str,
    *,
    category: str = "health",
    contact_ok: bool = True,
    shared_phone: bool = False,
) -> str:
    """A consented case, forwarded through its chain (alerts recorded, not sent)."""
    return open_forwarded_case(
        municipality,
        number,
        category=category,
        contact_ok=contact_ok,
        shared_phone=shared_phone,
        description="una descripcion privada",
    )[1]


def focal_point_id(name_prefix: str) -> int:
    with db.transaction() as session:
        found = session.scalar(select(FocalPoint.id).where(FocalPoint.name.like(f"{name_prefix}%")))
        assert found is not None
        return found


def audited(action: str, object_id: str | None = None) -> list[AuditEntry]:
    with db.transaction() as session:
        query = select(AuditEntry).where(AuditEntry.action == action)
        if object_id is not None:
            query = query.where(AuditEntry.object_id == object_id)
        return list(session.scalars(query))


def post(client: Any, url: str, page_url: str, **data: Any) -> Any:
    """POST a form of ``page_url`` with the page's CSRF token."""
    token = csrf_token(client.get(page_url).get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, **data})


def notices(reference: str) -> int:
    with db.transaction() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        assert case is not None
        return len(
            session.scalars(
                select(Message.id).where(
                    Message.contact_id == case.contact_id,
                    Message.purpose == MessagePurpose.NOTICE.value,
                )
            ).all()
        )


@pytest.fixture()
def chiles_account(accounts: dict[str, str]) -> str:
    """A focal point account of Los Chiles, who never received the Upala sample case."""
    with db.transaction() as session:
        create_user(
            session,
            "chiles@ruta.test",
            "focal_point",
            PASSWORD,
            focal_point_id=focal_point_id("Punto focal Los Chiles"),
        )
    return "chiles@ruta.test"  # removed with every user by the accounts fixture


def test_a_coordinator_sees_the_cases_of_their_country_only(
    client: Any, accounts: dict[str, str], sample_case: dict[str, Any]
) -> None:
    honduras = open_case("hn-san-pedro-sula", "+50488002233")
    login(client, accounts["coordinator"])
    inbox = client.get("/admin/cases/").get_data(as_text=True)
    assert f'data-reference="{sample_case["reference"]}"' in inbox
    assert honduras not in inbox
    assert client.get(f"/admin/cases/{sample_case['reference']}").status_code == 200
    assert client.get(f"/admin/cases/{honduras}").status_code == 404
    assert client.post(f"/admin/cases/{honduras}/reveal").status_code == 400  # no CSRF token
    response = post(client, f"/admin/cases/{honduras}/reveal", "/admin/cases/")
    assert response.status_code == 404
    assert audited("case.view", honduras) == []

    login(client, accounts["admin"])
    everything = client.get("/admin/cases/").get_data(as_text=True)
    assert sample_case["reference"] in everything and honduras in everything


def test_a_focal_point_sees_the_cases_sent_to_them_only(
    client: Any,
    accounts: dict[str, str],
    chiles_account: str,
    sample_case: dict[str, Any],
) -> None:
    reference = sample_case["reference"]
    login(client, accounts["focal_point"])
    assert f'data-reference="{reference}"' in client.get("/admin/cases/").get_data(as_text=True)
    assert client.get(f"/admin/cases/{reference}").status_code == 200

    login(client, chiles_account)
    assert reference not in client.get("/admin/cases/").get_data(as_text=True)
    assert client.get(f"/admin/cases/{reference}").status_code == 404
    assert post(client, f"/admin/cases/{reference}/accept", "/admin/cases/").status_code == 404
    assert case_by_reference(reference).status == "forwarded"


def test_inbox_filters_and_no_personal_data_in_the_list(
    client: Any, accounts: dict[str, str], sample_case: dict[str, Any]
) -> None:
    shelter = open_case("cr-upala", "+50688009900", category="shelter")
    login(client, accounts["admin"])
    inbox = client.get("/admin/cases/").get_data(as_text=True)
    assert 'id="cases"' in inbox
    assert SAMPLE_PERSON not in inbox and "descripcion" not in inbox and "medico" not in inbox
    only_health = client.get("/admin/cases/?category=health").get_data(as_text=True)
    assert sample_case["reference"] in only_health and shelter not in only_health
    upala = client.get("/admin/cases/?municipality=cr-upala&status=forwarded&tier=standard")
    assert sample_case["reference"] in upala.get_data(as_text=True)
    elsewhere = client.get("/admin/cases/?municipality=cr-escazu").get_data(as_text=True)
    assert sample_case["reference"] not in elsewhere
    assert sample_case["reference"] not in client.get("/admin/cases/?overdue=1").get_data(
        as_text=True
    )
    with db.transaction() as session:
        case = session.get(Case, sample_case["id"])
        assert case is not None
        case.overdue = True
    overdue = client.get("/admin/cases/?overdue=1").get_data(as_text=True)
    assert sample_case["reference"] in overdue and shelter not in overdue


def test_the_case_page_is_audited_and_hides_the_number_until_revealed(
    client: Any, accounts: dict[str, str], sample_case: dict[str, Any]
) -> None:
    reference = sample_case["reference"]
    login(client, accounts["focal_point"])
    page = client.get(f"/admin/cases/{reference.lower()}")
    html = page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert 'id="case-status" data-status="forwarded">Sent<' in html and 'id="timeline"' in html
    assert "necesito un medico" in html and "main:v1:consent" in html and "morning" in html
    assert SAMPLE_PERSON not in html and 'id="reveal"' in html
    assert len(audited("case.view", reference)) == 1
    assert audited("case.reveal") == []

    revealed = post(client, f"/admin/cases/{reference}/reveal", f"/admin/cases/{reference}")
    assert revealed.status_code == 200
    assert revealed.headers["Cache-Control"] == "no-store"
    assert f'id="revealed-number">{SAMPLE_PERSON}<' in revealed.get_data(as_text=True)
    entries = audited("case.reveal", reference)
    assert len(entries) == 1 and entries[0].actor.startswith("user:")
    assert SAMPLE_PERSON not in str(entries[0].detail)
    assert case_events(reference)[-1] == "number_revealed"
    # Shown once: the next view of the page does not carry it.
    assert SAMPLE_PERSON not in client.get(f"/admin/cases/{reference}").get_data(as_text=True)
    assert len(audited("case.view", reference)) == 3


def test_no_number_when_the_person_did_not_agree_to_be_contacted(
    client: Any, accounts: dict[str, str]
) -> None:
    number = "+50688007711"
    reference = open_case("cr-upala", number, contact_ok=False)
    login(client, accounts["coordinator"])
    page = client.get(f"/admin/cases/{reference}").get_data(as_text=True)
    assert 'id="reveal"' not in page and "did not agree to be contacted" in page
    refused = post(client, f"/admin/cases/{reference}/reveal", f"/admin/cases/{reference}")
    assert refused.status_code == 200
    assert number not in refused.get_data(as_text=True)
    assert "did not agree" in refused.get_data(as_text=True)
    (entry,) = audited("case.reveal", reference)
    assert "refused" in entry.detail
    assert "number_revealed" not in case_events(reference)


def test_accept_then_close_from_the_web(
    client: Any,
    accounts: dict[str, str],
    sample_case: dict[str, Any],
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
) -> None:
    reference = sample_case["reference"]
    page = f"/admin/cases/{reference}"
    login(client, accounts["focal_point"])
    assert 'id="close"' not in client.get(page).get_data(as_text=True)
    refused = post(client, f"{page}/close", page, outcome="successful")
    assert refused.status_code == 302 and case_by_reference(reference).status == "forwarded"

    assert post(client, f"{page}/accept", page).status_code == 302
    accepted = case_by_reference(reference)
    assert accepted.status == "accepted" and accepted.accepted_at is not None
    assert accepted.accepted_by_id == focal_point_id("Punto focal Upala")
    assert notices(reference) == 1
    html = client.get(page).get_data(as_text=True)
    assert 'id="case-status" data-status="accepted">Accepted<' in html and 'id="outcome"' in html
    assert 'id="accept"' not in html

    assert post(client, f"{page}/close", page, outcome="unsuccessful").status_code == 302
    closed = case_by_reference(reference)
    assert closed.status == "closed" and closed.outcome == "unsuccessful"
    assert closed.rating_requested_at is not None
    assert notices(reference) == 2
    kinds = case_events(reference)
    assert kinds[-4:] == ["accepted", "person_notified", "closed", "person_notified"]
    assert [e.detail["outcome"] for e in audited("case.close", reference)] == ["unsuccessful"]
    assert len(audited("case.accept", reference)) == 1
    worker()
    to_person = [m["body"] for m in fake_provider.messages() if m["to"] == SAMPLE_PERSON]
    assert len(to_person) == 2 and "se cerro" in to_person[-1]
    assert SAMPLE_PERSON not in client.get(page).get_data(as_text=True)
    # Closing twice is refused, and changes nothing.
    post(client, f"{page}/close", page, outcome="successful")
    assert case_by_reference(reference).outcome == "unsuccessful"


def test_no_notice_to_a_shared_phone_when_closed_from_the_web(
    client: Any, accounts: dict[str, str]
) -> None:
    reference = open_case("cr-upala", "+50688006622", shared_phone=True)
    page = f"/admin/cases/{reference}"
    login(client, accounts["coordinator"])
    post(client, f"{page}/accept", page)
    post(client, f"{page}/close", page, outcome="successful")
    closed = case_by_reference(reference)
    assert closed.status == "closed" and closed.outcome == "successful"
    assert closed.accepted_by_id is None  # a coordinator account accepts as itself
    assert notices(reference) == 0 and "person_notified" not in case_events(reference)


def test_reassign_sends_the_case_to_the_chosen_focal_point(
    client: Any,
    accounts: dict[str, str],
    sample_case: dict[str, Any],
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
) -> None:
    reference = sample_case["reference"]
    page = f"/admin/cases/{reference}"
    backup = focal_point_id("Respaldo Upala")
    login(client, accounts["coordinator"])
    html = client.get(page).get_data(as_text=True)
    assert 'id="reassign-to"' in html and f'value="{backup}"' in html
    assert "San Pedro Sula" not in html  # only focal points of the case's country
    honduras = focal_point_id("Punto focal San Pedro Sula")
    post(client, f"{page}/reassign", page, focal_point_id=str(honduras))
    assert case_by_reference(reference).assigned_focal_point_id != honduras

    assert post(client, f"{page}/reassign", page, focal_point_id=str(backup)).status_code == 302
    moved = case_by_reference(reference)
    assert moved.status == "forwarded" and moved.assigned_focal_point_id == backup
    assert moved.deadline_at is not None
    assert case_events(reference)[-1] == "reassigned"
    (entry,) = audited("case.reassign", reference)
    assert entry.detail["to"] == backup
    worker()
    alerts = [m["body"] for m in fake_provider.messages() if m["to"] == BACKUP]
    assert len(alerts) == 1 and f"OK {reference}" in alerts[0]
    assert "medico" not in alerts[0] and SAMPLE_PERSON not in alerts[0]


def test_reassign_undoes_an_acceptance(client: Any, accounts: dict[str, str]) -> None:
    reference = open_case("cr-upala", "+50688003344")
    page = f"/admin/cases/{reference}"
    login(client, accounts["admin"])
    post(client, f"{page}/accept", page)
    assert case_by_reference(reference).status == "accepted"
    backup = focal_point_id("Respaldo Upala")
    post(client, f"{page}/reassign", page, focal_point_id=str(backup))
    moved = case_by_reference(reference)
    assert moved.status == "forwarded" and moved.accepted_at is None
    assert moved.assigned_focal_point_id == backup


def test_the_audit_log_is_for_admins_only(
    client: Any, accounts: dict[str, str], sample_case: dict[str, Any]
) -> None:
    reference = sample_case["reference"]
    login(client, accounts["coordinator"])
    client.get(f"/admin/cases/{reference}")
    assert client.get("/admin/audit/").status_code == 403

    login(client, accounts["admin"])  # one client: the tests' app context keeps flask.g
    html = client.get("/admin/audit/").get_data(as_text=True)
    assert 'data-action="case.view"' in html and reference in html
    assert 'data-action="login"' in html
    only_cases = client.get(f"/admin/audit/?action=case&object_id={reference}").get_data(
        as_text=True
    )
    assert 'data-action="case.view"' in only_cases and 'data-action="login"' not in only_cases
    # Newest first: the admin's login, the coordinator's view, the coordinator's login.
    view = html.index('data-action="case.view"')
    assert html.index('data-action="login"') < view < html.rindex('data-action="login"')


def test_the_audit_log_pages_by_fifty(client: Any, accounts: dict[str, str]) -> None:
    from admin.audit_log import PAGE_SIZE

    with db.transaction() as session:
        for _ in range(PAGE_SIZE + 5):
            session.add(AuditEntry(actor="test", action="test.entry", object_type="x", detail={}))
    login(client, accounts["admin"])
    first = client.get("/admin/audit/?action=test.entry").get_data(as_text=True)
    assert first.count('data-action="test.entry"') == PAGE_SIZE and 'id="older"' in first
    second = client.get("/admin/audit/?action=test.entry&page=2").get_data(as_text=True)
    assert second.count('data-action="test.entry"') == 5

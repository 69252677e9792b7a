"""The token page in Debian's Chromium: create a token (shown once), use it, revoke it after a
confirmation."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.browser.pages import log_in
from tests.factories import make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def api_status(live_server, token: str) -> int:
    headers = {"Authorization": f"Token {token}"}
    return requests.get(f"{live_server.url}/api/v1/nodes/", headers=headers, timeout=10).status_code


def test_a_token_is_created_shown_once_used_and_revoked(page: Page, live_server, artifacts_dir):
    make_user("alice", teams=[make_team("platform")])
    log_in(page, live_server)
    page.get_by_test_id("tokens-link").click()
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    expect(page.get_by_test_id("no-tokens")).to_be_visible()
    page.screenshot(path=artifacts_dir / "tokens-empty.png", full_page=True)

    page.fill("#id_note", "CI pipeline")
    page.select_option("#id_expires_in_days", "7")
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_test_id("new-token")
    expect(secret).to_be_visible()
    token = secret.inner_text().strip()
    assert len(token) == 64
    row = page.locator(f"[data-testid=token-{token[:15]}]")
    expect(row).to_contain_text("CI pipeline")
    page.screenshot(path=artifacts_dir / "tokens-created.png", full_page=True)
    assert api_status(live_server, token) == 200

    # Shown once: the page never shows it again.
    page.reload()
    expect(page.get_by_test_id("new-token")).to_have_count(0)
    assert token not in page.content()
    expect(row).to_be_visible()

    # Revoking asks first; saying no keeps the token.
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name="Revoke").click()
    page.wait_for_timeout(300)
    expect(row).to_be_visible()
    assert api_status(live_server, token) == 200

    messages = []

    def accept(dialog) -> None:
        messages.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator(".messages")).to_contain_text("is revoked")
    expect(row).to_have_count(0)
    assert "CI pipeline" in messages[0]
    assert api_status(live_server, token) == 401
    page.screenshot(path=artifacts_dir / "tokens-revoked.png", full_page=True)

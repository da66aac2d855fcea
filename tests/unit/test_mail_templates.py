"""Mail templates render without a database and link only pages that exist."""

from privacy_hub.jobs import mail


def test_the_deadline_reminder_names_the_request_and_links_its_console_page() -> None:
    """R-DEAD-03: the DPO is told which request is due, or overdue, and where to open it."""
    composed = mail.compose("deadline_reminder", to="dpo@shop.example",
                            sender="privacy@shop.example",
                            context={"request_id": "r-1", "request_type": "access",
                                     "due_at": "2026-12-23",
                                     "base_url": "https://hub.example"})
    assert composed.link is None
    text = composed.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = composed.message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for body in (text, html):
        assert "r-1" in body and "2026-12-23" in body
        assert "https://hub.example/console/requests/r-1" in body
        assert "overdue" not in body
    overdue = mail.compose("deadline_reminder", to="dpo@shop.example",
                           sender="privacy@shop.example",
                           context={"request_id": "r-1", "request_type": "access",
                                    "due_at": "2026-12-23", "overdue": True,
                                    "base_url": "https://hub.example"})
    assert overdue.message["Subject"] == "Privacy request overdue since 2026-12-23"

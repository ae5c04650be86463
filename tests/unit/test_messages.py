"""Messages render hostile input as inert text: Slack Block Kit and the webhook payload."""
import pytest

from chalicelib.alerting.notify import WEBHOOK_FIELDS, render_slack, render_text, slack_escape
from chalicelib.settings import get_settings

HOSTILE = 'gpt-4o <!channel> <https://evil.example|click> *bold* _it_ & @here "quoted" \\ </script>'


def facts(**overrides):
    return {"event": "alert.opened", "provider": "openai", "severity": "critical", "title": f"Model {HOSTILE}",
            "message": f"tags: team={HOSTILE}", "timestamp": "2026-11-22T10:00:00Z", **overrides}


def test_slack_blocks_carry_outside_text_as_plain_text_only():
    message = render_slack(facts())
    blocks = message["attachments"][0]["blocks"]
    assert blocks[0]["text"] == {"type": "plain_text", "text": f"Model {HOSTILE}", "emoji": False}
    assert blocks[1]["text"]["type"] == "plain_text" and HOSTILE in blocks[1]["text"]["text"]
    assert all(b["type"] != "section" or b["text"]["type"] == "plain_text" for b in blocks)
    assert "<!channel>" not in message["text"] and "&lt;!channel&gt;" in message["text"]
    assert "<https://" not in message["text"]
    assert message["attachments"][0]["color"] == "#D00000"


@pytest.fixture
def no_dashboard(monkeypatch):
    """Messages link the dashboard when one is configured: none here, so each rendering is known exactly."""
    monkeypatch.delenv("TOLLGATE_DASHBOARD_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_escaping_and_text_rendering(no_dashboard):
    assert slack_escape("<a & b>") == "&lt;a &amp; b&gt;"
    assert render_text(facts()) == (f"Model {HOSTILE}\n\ntags: team={HOSTILE}\n\n"
                                    "Severity: critical · alert.opened · 2026-11-22T10:00:00Z\n")
    assert set(WEBHOOK_FIELDS) == {"event", "provider", "severity", "title", "message", "timestamp"}


def test_a_long_title_is_cut_to_150_characters_in_the_slack_header(no_dashboard):
    plain = {"type": "plain_text", "emoji": False}
    assert render_slack(facts(title="x" * 500)) == {
        "text": "[critical] " + "x" * 500,
        "attachments": [{"color": "#D00000", "blocks": [
            {"type": "header", "text": {**plain, "text": "x" * 150}},
            {"type": "section", "text": {**plain, "text": f"tags: team={HOSTILE}"}},
            {"type": "context", "elements": [{**plain, "text": "critical · alert.opened · 2026-11-22T10:00:00Z"}]},
        ]}],
    }

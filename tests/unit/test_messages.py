"""Messages render hostile input as inert text: Slack Block Kit and the webhook payload."""
import json

from chalicelib.notify import WEBHOOK_FIELDS, render_slack, render_text, slack_escape

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


def test_escaping_and_text_rendering():
    assert slack_escape("<a & b>") == "&lt;a &amp; b&gt;"
    assert HOSTILE in render_text(facts())
    assert set(WEBHOOK_FIELDS) == {"event", "provider", "severity", "title", "message", "timestamp"}
    json.dumps(render_slack(facts(title="x" * 500)))  # long text is cut, still valid JSON
    assert len(render_slack(facts(title="x" * 500))["attachments"][0]["blocks"][0]["text"]["text"]) == 150

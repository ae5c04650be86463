"""`cli.py` takes its gateway and admin key before or after the job's name, and from the environment."""
import cli


def test_url_and_admin_key_go_before_or_after_the_job(monkeypatch):
    monkeypatch.delenv("TOLLGATE_URL", raising=False)
    monkeypatch.setenv("TOLLGATE_ADMIN_KEY", "from-env")
    after = cli.arguments(["reconcile", "--day", "2026-12-01", "--url", "https://gw.example", "--admin-key", "k"])
    before = cli.arguments(["--url", "https://gw.example", "--admin-key", "k", "reconcile", "--day", "2026-12-01"])
    assert (after.url, after.admin_key) == (before.url, before.admin_key) == ("https://gw.example", "k")
    default = cli.arguments(["reprice", "--start", "2026-12-01"])
    assert (default.url, default.admin_key) == ("http://127.0.0.1:8000", "from-env")

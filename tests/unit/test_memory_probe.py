"""Attributing the local stack's memory (issue #25 item 11): each live allocation goes to moto, to our code or to
the library that made it, by its traceback; a dump on demand says what grew since the last one."""
import tracemalloc

from local import heap, memory_probe
from local.memory_probe import ROOT, owner

SITE = "/x/.venv/lib/python3.13/site-packages/"


def test_an_allocation_under_moto_is_motos_whoever_called_it():
    frames = [("/usr/lib/python3.13/json/decoder.py", 3), (SITE + "moto/dynamodb/models/table.py", 88),
              (SITE + "werkzeug/serving.py", 9)]
    assert owner(frames) == ("moto", "moto/dynamodb/models/table.py:88")


def test_ours_is_the_innermost_frame_of_chalicelib_local_or_app():
    frames = [(SITE + "botocore/parsers.py", 5), (ROOT + "chalicelib/ledger/signals.py", 130),
              (ROOT + "local/stack.py", 2)]
    assert owner(frames) == ("ours", "chalicelib/ledger/signals.py:130")


def test_else_the_library_that_made_it_or_python():
    assert owner([("/usr/lib/python3.13/copy.py", 1), (SITE + "uvicorn/server.py", 7)]) == ("uvicorn", "uvicorn/server.py:7")
    assert owner([("/usr/lib/python3.13/copy.py", 1)])[0] == "python"


def test_the_probe_leaves_out_its_own_allocations():
    assert owner([(memory_probe.__file__, 1), (ROOT + "local/stack.py", 2)])[0] == "probe"


def _hold(count: int) -> list[bytes]:
    return [bytes(1000) for _ in range(count)]


def test_a_dump_names_what_grew_since_the_last_one(tmp_path):
    try:
        probe = memory_probe.Probe(tmp_path, frames=5)
        probe.dump()  # starts tracing
        assert tracemalloc.is_tracing()
        held = _hold(2000)  # ~2 MB held, put to the innermost library frame above this file (pytest's)
        second = probe.dump().read_text()
    finally:
        tracemalloc.stop()
    assert len(held) == 2000
    assert (tmp_path / "1.txt").exists() and second.startswith("dump 2: RSS ")
    [growth] = [line.removeprefix("growth by owner (KB): ").split(", ") for line in second.splitlines()
                if line.startswith("growth by owner")]
    assert 1900 <= max(int(entry.split()[1]) for entry in growth) <= 2200, growth


def test_malloc_trim_is_there_on_glibc():
    assert heap.release_free_memory() is True


def test_botocore_sessions_share_one_loader_in_the_local_stack(monkeypatch):
    """Each pynamodb model's connection has a session of its own: each loaded the service model again (~9 MB)."""
    import botocore.session

    from local.botocore_data import share_botocore_data

    monkeypatch.setattr(botocore.session, "create_loader", botocore.session.create_loader)  # undone after the test
    share_botocore_data()
    share_botocore_data()
    first, second = botocore.session.get_session(), botocore.session.get_session()
    assert first.get_component("data_loader") is second.get_component("data_loader")


def test_a_dump_that_fails_says_why_instead_of_leaving_its_waiter_hanging(tmp_path, monkeypatch):
    def busy():
        raise RuntimeError("dictionary changed size during iteration")  # a table written while it was read

    monkeypatch.setattr(memory_probe, "moto_holds", busy)
    written = memory_probe.Probe(tmp_path, frames=0).dump()
    assert written == tmp_path / "1.txt"
    assert written.read_text() == "dump 1 failed: RuntimeError: dictionary changed size during iteration\n"

"""The pure part of exports: what an export covers, its file written row by row, ids, deadlines, shown state."""
import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.errors import InvalidRequest
from chalicelib.query import Query
from chalicelib.reports.export_format import (
    LAMBDA_RESPONSE_MAX,
    Deadline,
    ExportSpec,
    ExportWriter,
    check_export_id,
    first_id_after,
    fits_one_response,
    new_export_id,
    progress_view,
    shown_state,
)

NOW = datetime(2026, 3, 10, 15, 30, 0, tzinfo=timezone.utc)


def spec(**params):
    return ExportSpec.from_params(Query(params), NOW, None)


def test_the_default_is_the_last_24_hours_as_csv_in_two_days():
    found = spec()
    assert (found.format, found.named) == ("csv", {"hours": 24})
    assert (found.start, found.end) == ("2026-03-09T15:30:00.000001Z", "2026-03-10T15:30:00.000000Z")
    assert [(w.day, w.low, w.high) for w in found.windows()] == [
        ("2026-03-09", "2026-03-09T15:30:00.000001Z", "2026-03-09T23:59:59.999999Z#~"),
        ("2026-03-10", "2026-03-10T00:00:00.000000Z", "2026-03-10T15:30:00.000000Z#~")]
    assert found.file_name == "tollgate-calls-2026-03-09-24h.csv"
    assert found.range_view() == {"hours": 24, "from": "2026-03-09T15:30:00Z", "to": "2026-03-10T15:30:00Z"}


def test_start_and_end_are_whole_utc_days_both_included():
    found = spec(start="2026-03-01", end="2026-03-03", format="json")
    assert [w.day for w in found.windows()] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    first, last = found.windows()[0], found.windows()[-1]
    assert first.low == "2026-03-01T00:00:00.000000Z" and last.high == "2026-03-03T23:59:59.999999Z#~"
    # a call's sort key is `<ts>#<call id>`: the first and last microsecond of the range are in, their neighbours out
    inside = ["2026-03-01T00:00:00.000000Z#call_a", "2026-03-03T23:59:59.999999Z#call_b"]
    outside = ["2026-02-28T23:59:59.999999Z#call_c", "2026-03-04T00:00:00.000000Z#call_d"]
    assert all(first.low <= k <= first.high for k in inside[:1]) and last.low <= inside[1] <= last.high
    assert not any(w.low <= k <= w.high for k in outside for w in found.windows())
    assert found.file_name == "tollgate-calls-2026-03-01-2026-03-03.json"
    assert found.content_type == "application/json"


def test_a_month_not_over_yet_ends_now_and_names_its_month():
    found = spec(month="2026-03")
    windows = found.windows()
    assert (windows[0].day, windows[-1].day, len(windows)) == ("2026-03-01", "2026-03-10", 10)  # no future day
    assert windows[-1].high == "2026-03-10T15:30:00.000000Z#~"
    assert found.file_name == "tollgate-calls-2026-03.csv" and found.range_view()["month"] == "2026-03"


def test_days_back_are_whole_days_today_included():
    assert [w.day for w in spec(days="3").windows()] == ["2026-03-08", "2026-03-09", "2026-03-10"]


@pytest.mark.parametrize("params", [{"format": "xml"}, {"hours": "0"}, {"days": "400"}, {"end": "2026-03-01"},
                                    {"start": "2026-03-05", "end": "2026-03-01"}, {"month": "2026-13"},
                                    {"hours": "2", "days": "3"}, {"start": "01/03/2026"}])
def test_what_cannot_be_exported_is_a_400(params):
    with pytest.raises(InvalidRequest):
        ExportSpec.from_params(Query(params), NOW, None)


def test_filters_and_the_account_travel_in_the_spec():
    found = ExportSpec.from_params(Query({"model": "gpt-4o", "user": "alice", "key": "k1", "team": "", "other": "x"}), NOW,
                                   "acme")
    assert found.filters == {"model": "gpt-4o", "user": "alice", "key": "k1"} and found.account == "acme"
    assert ExportSpec.from_json(found.to_json()) == found


def view(n, **fields):
    return {"call_id": f"call_{n}", "ts": f"2026-03-10T00:00:0{n}.000000Z", "model": "gpt-4o", "cost_usd": "0.01",
            "tags": {"k": "v"}, **fields}


def test_csv_rows_make_one_file_and_formula_cells_are_quoted():
    writer = ExportWriter(spec())
    text = writer.head() + writer.row(view(1, model="=cmd|' /C calc'!A0")) + writer.row(
        view(2, operation="\t=1+2", user="@me")) + writer.tail()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["call_id"] for r in rows] == ["call_1", "call_2"]
    assert rows[0]["model"] == "'=cmd|' /C calc'!A0" and rows[1]["operation"] == "'\t=1+2" and rows[1]["user"] == "'@me"
    assert rows[0]["cost_usd"] == "0.01" and rows[0]["tags"] == "k=v"  # the JSON has them: so does the CSV


def test_csv_tags_read_as_the_header_writes_them_and_a_formula_tag_is_quoted():
    writer = ExportWriter(spec())
    text = writer.head() + writer.row(view(1, tags={"team": "ml", "env": "prod"})) + writer.row(
        view(2, tags={})) + writer.row(view(3, tags={"=x": "1"})) + writer.tail()
    assert [r["tags"] for r in csv.DictReader(io.StringIO(text))] == ["env=prod,team=ml", "", "'=x=1"]


def test_json_rows_make_one_document_even_when_written_in_several_runs():
    first = ExportWriter(spec(format="json"))
    text = first.head() + first.row(view(1)) + first.row(view(2))
    later = ExportWriter(spec(format="json"), rows_before=2)  # a run that resumes after two calls
    text += later.row(view(3, user="José")) + later.tail()
    document = json.loads(text)
    assert [c["call_id"] for c in document["calls"]] == ["call_1", "call_2", "call_3"]
    assert document["range"]["hours"] == 24 and document["calls"][2]["user"] == "José"
    empty = ExportWriter(spec(format="json"))
    assert json.loads(empty.head() + empty.tail())["calls"] == []


def test_a_body_fits_one_lambda_response_once_escaped():
    assert fits_one_response("a" * (LAMBDA_RESPONSE_MAX - 2))
    assert not fits_one_response('"' * (LAMBDA_RESPONSE_MAX // 2 + 10))  # each quote is two bytes there
    assert not fits_one_response("é" * (LAMBDA_RESPONSE_MAX // 6 + 10))  # \u00e9: six


def test_export_ids_sort_by_time_and_are_checked():
    earlier, later = new_export_id(NOW), new_export_id(NOW + timedelta(milliseconds=1))
    assert earlier < later and check_export_id(earlier) == earlier and len(earlier) == 36
    assert first_id_after(NOW) <= earlier < first_id_after(NOW + timedelta(milliseconds=1))
    for bad in ("exp_", "exp_" + "g" * 32, "EXP_" + "0" * 32, "exp_" + "0" * 33, None, 7):
        with pytest.raises(InvalidRequest):
            check_export_id(bad)


def test_a_run_hands_over_before_its_timeout_but_always_moves_forward():
    clock = [100.0]
    deadline = Deadline(900, margin=120, minimum=60, clock=lambda: clock[0])
    clock[0] += 779
    assert not deadline.passed()
    clock[0] += 1
    assert deadline.passed()
    short = Deadline(3, margin=120, minimum=60, clock=lambda: clock[0])  # little left: still a minute of work
    clock[0] += 59
    assert not short.passed()
    assert not Deadline(None, margin=120, minimum=60).passed()  # a thread of the local stack: no timeout


def test_a_job_that_stopped_moving_shows_as_failed():
    assert shown_state("running", "2026-03-10T15:20:00Z", NOW, timedelta(minutes=20)) == ("running", None)
    state, error = shown_state("running", "2026-03-10T15:20:00Z", NOW + timedelta(minutes=11), timedelta(minutes=20))
    assert state == "failed" and "has not moved since 2026-03-10T15:20:00Z" in error
    assert shown_state("ready", "2026-01-01T00:00:00Z", NOW, timedelta(minutes=20)) == ("ready", None)


def test_progress_counts_days():
    assert progress_view(1, 4, 10, 2000, "running")["percent"] == 25
    assert progress_view(0, 0, 0, 0, "running")["percent"] == 0
    assert progress_view(3, 4, 10, 2000, "ready")["percent"] == 100

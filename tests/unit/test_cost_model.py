"""The cost model per call shape (bench/cost.py): genai-prices' LLM spend, AWS's parts, the two ratios, in Decimal."""
from decimal import Decimal
from types import SimpleNamespace

from bench import cost


def capacity(wcu_per_call: float) -> SimpleNamespace:
    return SimpleNamespace(wcu_per_call=wcu_per_call, shape=SimpleNamespace(user_share=0.7, calls_per_s=1_000))


def test_llm_spend_comes_from_genai_prices_and_grows_with_the_call():
    mini, agent, embedding, long_stream = (cost.llm_usd(shape) for shape in cost.SHAPES)
    assert mini == Decimal("0.00033")  # 1,000 × $0.15/M + 300 × $0.60/M
    assert long_stream == Decimal("0.00195")  # 1,000 × $0.15/M + 3,000 × $0.60/M
    assert agent == Decimal("0.09")  # 20,000 × $3/M + 2,000 × $15/M
    assert embedding == Decimal("0.00016")  # 8,000 × $0.02/M
    assert all(isinstance(v, Decimal) for v in (mini, agent, embedding, long_stream))


def test_each_part_and_both_ratios_add_up_by_hand():
    c = cost.costs(capacity(2.0), cost.SHAPES[0], memory=Decimal("0.5"))
    assert c["lambda"] == (2 * Decimal("0.5") * Decimal("0.0000133334") + Decimal("0.0000002")) * 10**6  # $13.5334
    per_call_second = Decimal("0.0816") * Decimal("1.15") / 3600 / 64 / Decimal("0.5")
    assert c["managed"] == (2 * per_call_second + Decimal("0.0000002")) * 10**6
    assert c["rollup"] == Decimal("2.0") * Decimal("0.625")  # 2 write units a call, $0.625 per million units
    rest = c["api"] + c["call_log"] + c["rollup"]
    assert c["total"] == c["lambda"] + rest and c["total_managed"] == c["managed"] + rest
    assert c["share"] == c["total"] / (Decimal("0.00033") * 10**6)
    assert c["share_managed"] < c["share"]
    assert all(isinstance(v, Decimal) for v in c.values())


def test_managed_instances_win_above_their_breakeven_utilisation_and_cost_money_idle():
    memory = Decimal("0.5")
    breakeven = cost.breakeven_utilisation(memory)
    assert cost.managed_call_second_usd(breakeven) == memory * cost.LAMBDA_GB_SECOND_ARM
    assert cost.managed_idle_usd_per_month() == 730 * 3 * Decimal("0.0816") * Decimal("1.15")  # $205.51


def test_rows_have_a_verdict_only_on_the_targeted_shape():
    rows = cost.rows(capacity(0.5))
    assert len(rows) == len(cost.SHAPES) == 4 and all(len(row) == len(cost.HEADER) for row in rows)
    assert rows[0][-1] in ("met, met", "met, MISSED", "MISSED, met", "MISSED, MISSED")
    assert [row[-1] for row in rows[1:]] == ["-", "-", "-"]
    cheap, dear = cost.costs(capacity(0.5)), cost.costs(capacity(40.0))
    assert dear["share"] > cheap["share"] and cost.met(capacity(40.0)) is False

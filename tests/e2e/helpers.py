"""Plain helpers shared by the e2e test modules (fixtures are in conftest.py): the official SDKs pointed at the
stack, and the usage the mock upstream is told to report, with its cost worked out by hand."""
from decimal import Decimal

import anthropic
import openai

M = Decimal("0.000001")
OPENAI_USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
                "prompt_tokens_details": {"cached_tokens": 1000},
                "completion_tokens_details": {"reasoning_tokens": 100}}
# gpt-4o, per million: $2.50 input, $1.25 cached input, $10 output (reasoning billed as output)
OPENAI_COST = 200 * Decimal("2.5") * M + 1000 * Decimal("1.25") * M + 300 * 10 * M
ANTHROPIC_USAGE = {"input_tokens": 100, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 500,
                   "output_tokens": 300}
# claude-haiku-4-5, per million: $1 input, $0.10 cache read, $1.25 cache write (5 m), $5 output
ANTHROPIC_COST = 100 * M + 2000 * Decimal("0.1") * M + 500 * Decimal("1.25") * M + 300 * 5 * M
ATTRIBUTION = {"X-Tollgate-User": "alice", "X-Tollgate-Session": "sess-9", "X-Tollgate-Operation": "e2e",
               "X-Tollgate-Tags": "suite=e2e"}


def openai_client(stack, key, provider="openai", **kwargs):
    return openai.OpenAI(base_url=f"{stack.url}/{provider}/v1", api_key=key, default_headers=ATTRIBUTION,
                         **kwargs)


def anthropic_client(stack, key, **kwargs):
    return anthropic.Anthropic(base_url=f"{stack.url}/anthropic", api_key=key, default_headers=ATTRIBUTION,
                               **kwargs)

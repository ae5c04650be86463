"""Tollgate: an LLM API gateway on AWS Chalice (proxy, metering, call log)."""

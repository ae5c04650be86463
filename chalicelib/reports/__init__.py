"""Reports: the JSON API's reads over aggregate items and the call log, and the OpenAPI document.

Imports the rollup's layout and store, the ledger and the root.
"""

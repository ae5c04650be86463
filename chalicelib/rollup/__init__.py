"""The rollup: call-log stream records folded into aggregate items, exactly once (DynamoDB Streams → Lambda).

Imports the ledger and the root; nothing from reports, alerting or the gateway.
"""

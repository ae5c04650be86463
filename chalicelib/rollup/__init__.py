"""The rollup: call-log stream records folded into aggregate items, exactly once (DynamoDB Streams → Lambda).

On the ledger beside the gateway: it imports the ledger and the root, nothing of the gateway, the reports or the
alerting. Each batch's facts go to listeners the wiring registers (app.py).
"""

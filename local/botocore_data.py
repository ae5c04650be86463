"""One botocore data loader for every session in the local stack's process, so AWS's service models load once.

pynamodb gives each model a connection of its own, and each connection a botocore session of its own; every
session loads DynamoDB's service model, endpoints and rules again (~9 MB a session, measured with tracemalloc:
`local/memory_probe.py`). With 18 models, boto3's clients and moto's own, that was most of what the stack
grew by as each model was first used. Sessions that share the loader share that data (~0.3 MB a client then);
botocore treats what it loads as read-only, as many clients of one session already share it.
"""
from __future__ import annotations

import functools


def share_botocore_data() -> None:
    """From now on, sessions with the same data path get the same loader (idempotent)."""
    import botocore.loaders
    import botocore.session

    if not isinstance(botocore.session.create_loader, functools._lru_cache_wrapper):
        botocore.session.create_loader = functools.lru_cache(maxsize=None)(botocore.loaders.create_loader)

"""The gate's hot path: the consent check, batches and audiences as set-based reads.

``checks`` gathers in a few indexed queries what ``consent.gate.decide`` needs and asks it;
``checklog`` records every answer off the request path (R-GATE-08).
"""

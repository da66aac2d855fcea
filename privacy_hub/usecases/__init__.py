"""The use cases of the hub: one function per thing a caller can do.

The rule: the API, the CLI, and next the portal and the console call these functions;
none of them reimplements a rule. Each takes the hub, a session (or, on the hot paths,
what it needs instead, such as the group-committing writer), plain values and an
``audit.Actor``, and returns plain values or raises a domain error. None commits (the
caller does, once) and none imports Flask: parsing input and rendering output belong to
the caller.
"""

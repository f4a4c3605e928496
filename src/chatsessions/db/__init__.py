"""Data access: the pool, the named queries, migrations and the embedded server."""

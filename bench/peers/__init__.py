"""Peer apps: the seeds' own stack, served beside Keel on the same database (bench/README.md)."""

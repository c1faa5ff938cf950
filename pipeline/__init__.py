"""Invoke task collections, one module each; tasks.py assembles them. Tasks are thin glue:
the logic lives in shared/ and services/."""

"""What test modules share, and the only test code a test module may import.

Here belong helpers used by more than one test module: the `Org` a test acts as and the types
of the factory fixtures in `tests/conftest.py`, shared tables of cases, GraphQL operations and
answers, rows written or read straight in the database, key and stream clients, the real
server process. A helper used by one test module stays in that module; a test module never
imports another test module or `tests.conftest` (tests/test_architecture.py enforces it).
"""

"""The REST shim: snake_case JSON in and out, forwarded to the same use cases as GraphQL."""

"""assistants-api: manage AI assistants over GraphQL and REST."""

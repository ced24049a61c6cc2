"""The GraphQL transport: translates names and errors, holds no business logic."""

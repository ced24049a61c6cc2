"""Use cases: one async function per operation, session first, the rest keyword-only."""

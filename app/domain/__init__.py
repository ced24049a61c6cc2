"""Use cases: one async function per operation, the transaction first, the rest keyword-only."""

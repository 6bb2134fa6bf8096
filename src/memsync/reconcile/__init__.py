"""Reconciliation: each candidate memory against what the vault already holds.

`decide` chooses ADD, NOOP, UPDATE, INVALIDATE or PROMOTE for one candidate and its
nearest memories (`Decision`); `session.store` carries the decisions out for one source,
in one transaction. A configured LLM may settle the hard cases (`judge`).
"""

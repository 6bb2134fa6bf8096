"""Retrieval: hybrid search (`search`), ranking with the evidence around each candidate
(`rank`), the period a query names (`when`), and context blocks for prompts (`context`)."""

"""The profile: a bio, a summary per category and insights, derived from the active
lasting memories (`build`), written by rules or a configured LLM (`llm`), and kept up to
date without rebuilding it from every memory per request (`cache`)."""

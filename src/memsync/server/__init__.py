"""The vault over the network: REST (`rest`), MCP (`mcp`) and the OpenAI-compatible
memory proxy (`proxy`), served together by `memsync serve` (`http.create_app`).

Every request is authenticated and rate-limited by the `Gate` and then goes through the
app's `memsync.disclose.access.AppSession`, so scopes and the disclosure ledger are the same
whichever door a request came in by.
"""

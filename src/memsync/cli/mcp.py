"""`memsync mcp`: the MCP server over stdio, and client configuration (being written)."""

from __future__ import annotations

import click


@click.group(invoke_without_command=True)
def mcp() -> None:
    """Serve the vault to an MCP client over stdio."""

"""`memsync serve` (being written)."""

from __future__ import annotations

import click


@click.command()
def serve() -> None:
    """Serve REST, MCP over HTTP and the memory proxy."""

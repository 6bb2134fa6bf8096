"""`memsync app …` and `memsync disclosures` (being written)."""

from __future__ import annotations

import click


@click.group()
def app() -> None:
    """Register the apps that may use the vault, and what each may see."""


@click.command()
def disclosures() -> None:
    """What each app was given."""

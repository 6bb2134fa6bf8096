"""Option types and option groups shared by several commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from memsync import codec
from memsync.errors import InvalidInput
from memsync.model import Category, Kind, SearchFilters, Status

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")

KINDS = click.Choice([k.value for k in Kind], case_sensitive=False)
CATEGORIES = click.Choice([c.value for c in Category], case_sensitive=False)
STATUSES = click.Choice([*(s.value for s in Status), "all"], case_sensitive=False)


if TYPE_CHECKING:  # click >= 8.4 makes ParamType generic; older ones cannot subscript it
    _TimeParam = click.ParamType[datetime]
else:
    _TimeParam = click.ParamType


class TimeType(_TimeParam):
    """An ISO 8601 date or date-time, e.g. 2026-03-12 or 2026-03-12T09:30; naive means UTC."""

    name = "TIME"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return codec.parse_time(str(value), param.name if param and param.name else "time")
        except InvalidInput:
            self.fail(f"{value!r} is not an ISO 8601 date or time (e.g. 2026-03-12)", param, ctx)


TIME = TimeType()


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(f)


def filter_options(f: Callable[..., R]) -> Callable[..., R]:
    """--kind, --category, --tag, --since, --until, --status, --include-expired, given to
    the command as one `filters: SearchFilters`."""

    @functools.wraps(f)
    def command(
        *args: Any,
        kinds: tuple[str, ...],
        categories: tuple[str, ...],
        tags: tuple[str, ...],
        since: datetime | None,
        until: datetime | None,
        status: str,
        include_expired: bool,
        **kwargs: Any,
    ) -> R:
        statuses = tuple(Status) if status == "all" else (Status(status),)
        filters = SearchFilters(
            kinds=tuple(Kind(k) for k in kinds),
            categories=tuple(Category(c) for c in categories),
            tags=tags,
            statuses=statuses,
            since=since,
            until=until,
            include_expired=include_expired,
        )
        return f(*args, filters=filters, **kwargs)

    decorators = [
        click.option(
            "--kind", "kinds", type=KINDS, multiple=True, help="Only this kind (repeatable)."
        ),
        click.option(
            "--category",
            "categories",
            type=CATEGORIES,
            multiple=True,
            help="Only this category (repeatable).",
        ),
        click.option(
            "--tag", "tags", multiple=True, help="Only memories with this tag (repeatable)."
        ),
        click.option("--since", type=TIME, help="Observed at or after this time (UTC)."),
        click.option("--until", type=TIME, help="Observed before this time (UTC)."),
        click.option(
            "--status",
            default="active",
            show_default=True,
            type=STATUSES,
            help="Which statuses to include.",
        ),
        click.option(
            "--include-expired", is_flag=True, help="Also memories whose valid-until has passed."
        ),
    ]
    for decorate in reversed(decorators):
        command = decorate(command)
    return command

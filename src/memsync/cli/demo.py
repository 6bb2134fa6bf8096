"""`memsync demo`: a tour on a throw-away vault, offline, in a few seconds.

It calls the same Vault methods the other commands call and prints, before each step, the
command a user would type for it.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from rich.console import Console
from rich.text import Text

from memsync.cli import output
from memsync.cli.capture import decisions_table
from memsync.cli.profile import profile_view, why_view
from memsync.cli.unlock import kdf_params
from memsync.model import Category, Kind, Message
from memsync.reconcile.decision import Decision
from memsync.vault import Vault

C, K = Category, Kind
# (text, kind, category, tags, observed this many days ago, expires in this many days)
# fmt: off
MEMORIES: list[tuple[str, Kind, Category, tuple[str, ...], int, int | None]] = [
    ("Prefers short, direct answers without bullet points", K.SEMANTIC, C.PRODUCTIVITY,
     ("style",), 60, None),
    ("Works as a data engineer at a solar-energy startup in Porto", K.SEMANTIC, C.CAREER,
     ("work",), 58, None),
    ("Allergic to peanuts and tree nuts", K.SEMANTIC, C.HEALTH, ("diet",), 55, None),
    ("Vegetarian since 2019; eats eggs and cheese", K.SEMANTIC, C.HEALTH, ("diet",), 50, None),
    ("Learning Japanese, aiming for the JLPT N4 exam in December", K.SEMANTIC, C.LEARNING,
     ("japanese",), 40, None),
    ("Flying to Tokyo in three weeks for a two-week trip with Marta", K.EPISODIC, C.TRAVEL,
     ("trip", "japan"), 12, 40),
    ("Sister Ana loves ceramics and has a birthday in June", K.SEMANTIC, C.RELATIONSHIPS,
     ("family",), 30, None),
    ("Plays five-a-side football on Thursday evenings", K.SEMANTIC, C.INTERESTS,
     ("sport",), 28, None),
    ("Writes most code in Python and Rust, in Neovim", K.SEMANTIC, C.PRODUCTIVITY,
     ("tools",), 25, None),
    ("Saving for a flat deposit; keeps eating out under 300 euros a month", K.SEMANTIC,
     C.FINANCE, ("budget",), 20, None),
    ("Dentist said to come back for a check-up in six months", K.EPISODIC, C.HEALTH,
     ("appointments",), 6, 180),
    ("Reading The Three-Body Problem for Sunday's book club", K.EPISODIC, C.INTERESTS,
     ("books",), 3, 5),
]
# fmt: on

CONVERSATION = [
    ("user", "Can you help me plan the first three days in Tokyo?"),
    (
        "assistant",
        "Sure. Stay near Shinjuku for easy train links: day one Shinjuku Gyoen "
        "and Omoide Yokocho, day two Asakusa and the Sumida river, day three a "
        "day trip to Kamakura.",
    ),
    ("user", "Remember I'm allergic to peanuts. Is street food risky?"),
    (
        "assistant",
        "Peanut oil and crushed peanuts turn up in some sauces and sweets, so "
        "carry an allergy card in Japanese and ask before ordering.",
    ),
    ("user", "Great. Any ideas for one nice dinner? I'm vegetarian."),
    (
        "assistant",
        "Try a shojin ryori temple restaurant: Buddhist vegetarian cooking, "
        "set menus from about 3,000 yen.",
    ),
]
# A week later: a changed job ends the old one; a new relation is added.
LATER = [
    ("user", "Quick update: I work as a product manager at Fable Health now."),
    ("assistant", "Congratulations on the new role!"),
    ("user", "Also my sister Ana's birthday is on 12 June, remind me to plan something."),
    ("assistant", "Noted: Ana's birthday on 12 June."),
]

SEARCHES = [
    "food allergies",
    "how should replies be formatted",
    "present for a family member",
    "where to stay in Tokyo",
]


def _step(con: Console, title: str | None, command: str) -> None:
    if title:
        con.rule(Text(title, style="bold"), align="left")
    con.print(Text(f"$ {command}", style="green"))


def run_demo(home: Path, con: Console) -> str:
    """Everything the demo shows, on a new vault at `home`; returns its passphrase."""
    passphrase = "demo " + secrets.token_urlsafe(18)
    now = datetime.now(UTC)
    started = time.monotonic()

    _step(con, "1. Create a vault", "memsync init")
    made = Vault.create(home, passphrase, kdf=kdf_params(), device_name="demo")
    with made.vault as vault:
        words = made.recovery_phrase.split()
        con.print(
            Text(
                f"vault {vault.header.vault_id}, encrypted with a random key; "
                f"recovery phrase (shown once): {' '.join(words[:3])} … "
                f"({len(words)} words)"
            )
        )

        _step(
            con,
            "2. Add memories",
            'memsync add "Allergic to peanuts and tree nuts" --category health --tag diet',
        )
        ids = {}
        for text, kind, category, tags, ago, expires in MEMORIES:
            ids[tags[0]] = vault.add(
                text,
                kind=kind,
                category=category,
                tags=tags,
                observed_at=now - timedelta(days=ago),
                valid_until=None if expires is None else now + timedelta(days=expires),
            ).id
        page = vault.list(limit=len(MEMORIES))
        con.print(output.memory_table(page.items))

        def chat(turns: list[tuple[str, str]], days_ago: int) -> list[Message]:
            start = now - timedelta(days=days_ago)
            return [
                Message(role, text, timestamp=start + timedelta(minutes=i))
                for i, (role, text) in enumerate(turns)
            ]

        _step(
            con,
            "3. Ingest a conversation: what you said becomes memories, reconciled",
            "memsync ingest -v tokyo-chat.json",
        )
        first = vault.ingest(chat(CONVERSATION, 9), title="Planning Tokyo")
        con.print(Text(f"{first.source.id}: {len(first.source.messages)} messages stored"))
        con.print(decisions_table(first.outcomes))
        _step(con, None, "memsync ingest -v new-job.json")
        later = vault.ingest(chat(LATER, 2), title="New job")
        con.print(decisions_table(later.outcomes))

        for i, query in enumerate(SEARCHES):
            title = "4. Search memories and turns by meaning, not just by words" if i == 0 else None
            _step(con, title, f'memsync search "{query}" -k 3')
            con.print(output.hits_table(vault.search(query, k=3)))

        noop = next((o for o in first.outcomes if o.decision is Decision.NOOP), None)
        if noop is not None:
            _step(con, "5. Why: where a memory came from", f"memsync why {noop.memory_id}")
            con.print(why_view(vault.why(noop.memory_id)))

        _step(con, "6. Your profile, built offline from lasting memories", "memsync profile")
        con.print(profile_view(vault.profile()))

        old = vault.get(ids["japanese"])
        _step(
            con,
            "7. Edit: the old version is superseded, never overwritten",
            f'memsync edit {old.id} --text "…"; memsync show <new id>',
        )
        new = vault.edit(
            old.id, text="Learning Japanese: passed JLPT N5, now aiming for N4 in December"
        )
        con.print(output.memory_detail(new, vault.history(new.id)))

        _step(con, "8. Verify the signed log and rebuild the state from it", "memsync check")
        report = vault.check()
        verdict = "ok" if report.ok else f"{len(report.problems)} problems"
        con.print(Text(f"{report.entries} log entries from {report.devices} device: {verdict}"))
    con.rule()
    con.print(Text(f"Done in {time.monotonic() - started:.1f} s, offline."))
    return passphrase


@click.command()
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Make the demo vault here and keep it (default: a temp dir, deleted).",
)
@click.option("--keep", is_flag=True, help="Keep the temp vault to explore it afterwards.")
def demo(home: Path | None, keep: bool) -> None:
    """Run an offline tour on a throw-away vault.

    It adds memories, ingests two conversations (memories are extracted and reconciled
    with what the vault knows), searches, explains a memory, shows the profile, edits
    and checks.

    Your own vault is not touched. Uses the real embedding model, on this machine.

    Example: memsync demo
    """
    con = output.console()
    place = home if home is not None else Path(tempfile.mkdtemp(prefix="memsync-demo-"))
    try:
        passphrase = run_demo(place, con)
    except BaseException:
        if home is None:
            shutil.rmtree(place, ignore_errors=True)
        raise
    if home is None and not keep:
        shutil.rmtree(place, ignore_errors=True)
        con.print(Text(f"The demo vault was in {place}; it has been deleted."))
    else:
        con.print(
            Text(
                f"The demo vault is in {place}. Explore it with:\n"
                f"  export MEMSYNC_HOME='{place}'\n"
                f"  export MEMSYNC_PASSPHRASE='{passphrase}'\n"
                "  memsync list"
            )
        )

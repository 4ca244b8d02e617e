"""The README speaks to users: every CLI command is in its command table, and it cites no
internal issue numbers."""

from __future__ import annotations

import re
from pathlib import Path

from motion_prior.cli import build_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_cli_command_is_in_the_command_table():
    section = README.split("## Command line", 1)[1].split("\n## ", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("| `motion-prior "))
    groups = build_parser()._subparsers._group_actions[0].choices
    commands = [f"{g} {v}" for g, sub in groups.items() if sub._subparsers
                for v in sub._subparsers._group_actions[0].choices]
    commands += [g for g, sub in groups.items() if not sub._subparsers]
    missing = [c for c in commands if not re.search(rf"`motion-prior {c}[ `]", table) and f"/ `{c}" not in table]
    assert "plan eval" in commands and missing == []


def test_no_internal_issue_numbers():
    assert re.findall(r".{30}\bissues?\b.{30}", README, re.I) == []

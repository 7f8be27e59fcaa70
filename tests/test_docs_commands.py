"""Every dtb command the README and docs/ show exists, with the options it is shown with (the
parser itself is asked: a command or option renamed or never built fails here)."""

import argparse
import re
from pathlib import Path

import pytest

from dtb.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def commands_in(text: str) -> list[str]:
    """Each `dtb ...` in inline code, and each line of a fenced code block that starts with dtb (up
    to a comment)."""
    found = re.findall(r"`(dtb [^`]+)`", text)
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        found += [m.split("#")[0] for m in re.findall(r"^\s*(?:\$ )?(dtb [^\n]+)$", block, flags=re.M)]
    return [c.strip() for c in found if not c.startswith("dtb:")]


def resolve(words: list[str]) -> tuple[argparse.ArgumentParser, list[str]] | None:
    """The (sub)parser that ``dtb WORDS`` reaches and the words left; None if a command is unknown."""
    parser, rest = build_parser(), words
    while rest and subparsers(parser) and not rest[0].startswith("-"):
        choices = subparsers(parser)
        if rest[0] not in choices:
            return None
        parser, rest = choices[rest[0]], rest[1:]
    return parser, rest


CASES = [(doc.name, cmd) for doc in DOCS for cmd in commands_in(doc.read_text())]


def test_the_docs_show_commands():
    assert len(CASES) > 20


@pytest.mark.parametrize("doc,command", CASES, ids=[f"{d}: {c[:60]}" for d, c in CASES])
def test_a_documented_command_exists_with_its_options(doc, command):
    words = command.replace("[", " ").replace("]", " ").replace("|", " ").split()[1:]
    found = resolve(words)
    assert found is not None, f"{doc}: no such command: {command}"
    parser, rest = found
    options = {s for a in parser._actions for s in a.option_strings}
    for word in rest:
        if word.startswith("--"):
            assert word.split("=")[0] in options, f"{doc}: {command}: no option {word} (known: {sorted(options)})"

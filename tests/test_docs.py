"""The reference in docs/ cannot drift from the code: every flag of every CLI is documented with its default."""

import argparse
import re

import pytest

from reranker_kit.commands import benchmark_flags, export, serve, settings_docs, train_embedder, train_reranker

from conftest import ROOT

PARSERS = {"fine_tune_reranker.py": train_reranker.build_parser, "fine_tune_embedder.py": train_embedder.build_parser,
           "main.py": benchmark_flags.build_parser,
           "rerank.py export": export.build_parser, "rerank.py serve": serve.build_parser}


def documented_rows() -> dict[str, list[str]]:
    """{`--flag` or positional name: [the default cell of each docs/ table row naming it first]}."""
    rows: dict[str, list[str]] = {}
    for path in sorted((ROOT / "docs").glob("*.md")):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^\| `([^`]+)` \| ([^|]*) \|", line)
            if match:
                rows.setdefault(match.group(1), []).append(match.group(2).strip())
    return rows


def parser_actions(build) -> list[argparse.Action]:
    parser = build()
    actions = [action for action in parser._actions if not isinstance(action, argparse._HelpAction)]
    for action in list(actions):
        if isinstance(action, argparse._SubParsersAction):
            actions.remove(action)
            actions += [sub for choice in action.choices.values() for sub in choice._actions
                        if not isinstance(sub, argparse._HelpAction)]
    return actions


def expected_default(action: argparse.Action) -> str | None:
    """How the docs table spells the default; None where the cell describes it in words (a None default)."""
    if action.required:
        return "(required)"
    if isinstance(action.default, bool):
        return "on" if action.default else "off"
    if action.default is None:
        return None
    if isinstance(action.default, list):
        return " ".join(map(str, action.default))
    return str(action.default)


def names_default(cell: str, wanted: str) -> bool:
    """The cell shows the default: the same text, or the same number however written (`2e-5` for 2e-05)."""
    text = cell.replace("`", "")
    try:
        return float(text) == float(wanted)
    except ValueError:
        return wanted in text


@pytest.mark.parametrize("script", PARSERS)
def test_every_flag_is_in_docs_with_its_default(script):
    rows = documented_rows()
    problems = []
    for action in parser_actions(PARSERS[script]):
        name = next((option for option in action.option_strings if option.startswith("--")), action.dest)
        if name not in rows:
            problems.append(f"{script} {name}: no row `| `{name}` | default | ... |` in docs/*.md")
            continue
        wanted = expected_default(action)
        if wanted is not None and not any(names_default(cell, wanted) for cell in rows[name]):
            problems.append(f"{script} {name}: docs give {rows[name]}, the parser's default is {wanted!r}")
    assert problems == []


@pytest.mark.parametrize("page", sorted(settings_docs.TABLES))
def test_the_training_flag_tables_are_the_ones_the_settings_generate(page):
    """Each setting is defined once: the tables are generated from the fields (`python -m ...settings_docs`)."""
    name, settings_class = settings_docs.TABLES[page]
    path = ROOT / "docs" / page
    assert path.read_text(encoding="utf-8") == settings_docs.rendered(path, name, settings_class), (
        f"docs/{page} is out of date: run python -m reranker_kit.commands.settings_docs")


def test_readme_is_short_and_links_every_docs_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in readme, f"README does not link docs/{page.name}"

"""The documentation site's generators (docs/hooks.py) and its references to the code, without mkdocs.

``make docs`` builds the site strictly; these checks run in the suite so that a renamed module, a new
algorithm without a page, a CLI command missing from the reference or a link to a deleted file fails here
too, in seconds and without the ``docs`` extra.
"""

from __future__ import annotations

import importlib
import importlib.util
import posixpath
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _load_hooks():
    spec = importlib.util.spec_from_file_location("brackit_docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _load_hooks()
PAGES = sorted(DOCS.rglob("*.md"))
GENERATED = {"cli.md", "results.md"}


def test_every_algorithm_has_a_page_with_its_config_table():
    from brackit.algos import ALGORITHMS
    from brackit.cli import config_field_docs

    assert hooks.missing_config_tables(DOCS) == []
    for name in ALGORITHMS:
        table = hooks.config_table(name)
        rows = [line for line in table.splitlines() if line.startswith("| `")]
        assert [row.split("`")[1] for row in rows] == [
            f for f, _, _ in config_field_docs(ALGORITHMS[name].config_cls)
        ]


def test_markers_expand_and_unknown_ones_fail():
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert "<!-- brackit:" not in hooks.expand_markers(text, str(page))
    with pytest.raises(hooks.DocsError, match="no algorithm 'nope'"):
        hooks.expand_markers("<!-- brackit:config nope -->")
    with pytest.raises(hooks.DocsError, match="unknown marker"):
        hooks.expand_markers("<!-- brackit:tables -->")
    assert "| `tiny` |" in hooks.expand_markers("<!-- brackit:budgets -->")


def test_cli_reference_covers_every_command_with_whole_helps():
    import typer.main

    from brackit.cli import app

    text = hooks.cli_markdown()
    headings = set(re.findall(r"^#+ `(brackit[\w -]*)`$", text, flags=re.MULTILINE))

    def paths(group, prefix):
        for name in group.list_commands(None):
            command = group.get_command(None, name)
            yield f"{prefix} {name}"
            if hasattr(command, "list_commands"):
                yield from paths(command, f"{prefix} {name}")

    expected = set(paths(typer.main.get_command(app), "brackit"))
    assert expected <= headings
    items = [line for line in text.splitlines() if re.match(r"^\* `\w[\w-]*`: ", line)]
    assert items and not [line for line in items if line.endswith("...")]


def test_api_references_name_existing_objects():
    for page in PAGES:
        for identifier in re.findall(r"^::: ([\w.]+)$", page.read_text(encoding="utf-8"), flags=re.MULTILINE):
            parts = identifier.split(".")
            for cut in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
                try:
                    obj = importlib.import_module(".".join(parts[:cut]))
                except ModuleNotFoundError:
                    continue
                for attribute in parts[cut:]:
                    assert hasattr(obj, attribute), f"{page.name}: ::: {identifier}"
                    obj = getattr(obj, attribute)
                break
            else:
                pytest.fail(f"{page.name}: ::: {identifier} names no module")


def test_links_resolve():
    """Links inside docs/ name a page or file there (or a generated page); links out of docs/ name a
    repository file, which the hooks publish."""
    for page in PAGES:
        src_uri = page.relative_to(DOCS).as_posix()
        text = page.read_text(encoding="utf-8")
        outside = {target for target, _ in hooks.repository_links(text, src_uri)}
        for target, path in hooks.repository_links(text, src_uri):
            assert (ROOT / path).is_file(), f"{src_uri}: {target}"
        for match in hooks.LINK.finditer(text):
            target = match.group(2).split("#")[0]
            if not target or not hooks._is_relative(match.group(2)) or match.group(2) in outside:
                continue
            inside = posixpath.normpath(posixpath.join(posixpath.dirname(src_uri), target))
            assert inside in GENERATED or (DOCS / inside).is_file(), f"{src_uri}: {target}"


def test_nav_lists_existing_pages_and_every_page():
    nav = re.findall(
        r":\s*([\w/.-]+\.md)\s*$|^\s*-\s*([\w/.-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M
    )
    listed = {a or b for a, b in nav}
    pages = {page.relative_to(DOCS).as_posix() for page in PAGES}
    assert listed - GENERATED <= pages
    assert pages <= listed


def test_repository_links_are_rewritten_to_published_copies():
    text = "[s](../../benchmarks/results/a/summary.md#table) [t](../../brackit/studies/x.toml) [u](bc.md) [v](https://x.org/a.md)"
    out = hooks.rewrite_repository_links(text, "algorithms/brac.md")
    assert "[s](../repo/benchmarks/results/a/summary.md#table)" in out
    assert "[t](../repo/brackit/studies/x.toml.md)" in out
    assert "[u](bc.md)" in out and "[v](https://x.org/a.md)" in out
    assert hooks.repository_links("[a](../README.md)", "index.md") == [("../README.md", "README.md")]


def test_prose_to_markdown():
    lines = [
        "Intro:",
        "- one",
        "  more",
        "- two",
        "",
        "A file::",
        "",
        "    code",
        "```",
        "x:",
        "- kept",
        "```",
    ]
    assert hooks.prose_to_markdown(lines) == [
        "Intro:",
        "",
        "- one",
        "  more",
        "- two",
        "",
        "A file:",
        "",
        "    code",
        "```",
        "x:",
        "- kept",
        "```",
    ]


def test_results_index_lists_every_results_page():
    index = hooks.results_index()
    for path in hooks.results_files():
        if path.endswith(".md"):
            assert f"({hooks.site_uri(path)})" in index
    assert not [path for path in hooks.results_files() if "/runs/" in path]

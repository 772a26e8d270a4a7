"""Build-time generation for the documentation site (mkdocs ``hooks:``, see mkdocs.yml).

Everything that restates the code is generated from it on every build, so it cannot go stale:

- ``cli.md``: the command-line reference, from the typer app ``brackit.cli.app`` by typer's own generator
  (what ``typer brackit.cli utils docs`` prints);
- ``<!-- brackit:config NAME -->`` in a page: the config table of algorithm NAME of the registry
  (``brackit.algos.ALGORITHMS``): every field with its type, default, valid range
  (``brackit.config_checks.field_facts``: the ranges in the fields' types and the conventional ranges) and the doc
  string under it (``brackit.cli.config_field_docs``), then the rules across fields (``RULES``), as
  ``brackit algos NAME`` prints them; ``<!-- brackit:algorithms -->``: the registry itself;
  ``<!-- brackit:budgets -->``: the study budgets (``brackit.study.BUDGETS``);
- ``repo/...``: files of the repository that the pages link to (``../benchmarks/results/...``,
  ``../brackit/studies/learning.toml``). A relative link that leaves ``docs/`` is taken as a path in the
  repository; the file is published under ``repo/`` (markdown as a page, an image as itself, any other
  text file as a page showing it) and the link rewritten to it, so ``mkdocs build --strict`` checks it.
  Every markdown file and image under ``benchmarks/results/`` (but the run directories) is published, and
  ``results.md`` lists them;
- ``assets/mathjax/tex-svg-full.js``: MathJax 3 from the ``docs`` extra (``django-static-mathjax`` ships
  its files; it has no dependencies), so formulas render without a CDN, from ``file://`` too.

brackit's docstrings are prose written for ``help()``: a list often follows its introducing line without
a blank line, which Python-Markdown needs, and literal blocks are introduced by RST's ``::``. A Markdown
preprocessor (``prose_to_markdown``, added to every page's and every docstring's Markdown) inserts the
blank line and turns a closing ``::`` into ``:``, so the API reference renders them as written.

A marker naming an unknown algorithm, an algorithm of the registry without a page showing its config
table, and a link to a repository file that does not exist all stop the build. The generators are plain
functions (mkdocs is imported only by the hooks), so ``tests/test_docs.py`` runs them without mkdocs.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RESULTS = "benchmarks/results"
PUBLISHED = "repo"
"""Site folder of the repository files the pages link to: ``repo/<path in the repository>``."""
IMAGES = (".png", ".svg", ".jpg", ".jpeg", ".gif")
MARKER = re.compile(r"<!--\s*brackit:(\w+)(?:\s+([\w.-]+))?\s*-->")
LINK = re.compile(r"(!?\[[^\]\n]*\]\()([^)\s]+)(\))")
LIST_ITEM = re.compile(r"^(?:[-*+]|\d+\.) \S")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
LANGUAGES = {
    ".py": "python",
    ".toml": "toml",
    ".sh": "bash",
    ".json": "json",
    ".yml": "yaml",
    ".yaml": "yaml",
}


try:
    from mkdocs.exceptions import PluginError as _BuildError
    from mkdocs.plugins import event_priority
except ImportError:  # tests/test_docs.py runs the generators without mkdocs
    _BuildError = Exception

    def event_priority(priority: float) -> Any:
        return lambda function: function


class DocsError(_BuildError):
    """A page asks for something the code or the repository does not have."""


# ----------------------------------------------------------------------------------------- config tables


def _cell(text: str) -> str:
    """Prose for a markdown table cell: RST ``literals`` as markdown code, pipes outside code escaped."""
    parts = text.replace("``", "`").split("`")
    return "`".join(part if index % 2 else part.replace("|", "\\|") for index, part in enumerate(parts))


def config_table(name: str) -> str:
    """The markdown table of algorithm ``name``'s config fields (what ``brackit algos NAME`` prints)."""
    from brackit.algos import ALGORITHMS
    from brackit.cli import config_field_docs
    from brackit.config_checks import field_facts, rule_texts

    if name not in ALGORITHMS:
        raise DocsError(f"<!-- brackit:config {name} -->: no algorithm {name!r} in {sorted(ALGORITHMS)}")
    algorithm = ALGORITHMS[name]
    facts = field_facts(algorithm.config_cls)
    lines = [
        f"Config `{algorithm.config_cls.__module__}.{algorithm.config_cls.__name__}`, set with "
        f"`brackit train {name} --set FIELD=VALUE`, in a study's `set` table, or as keyword arguments of "
        f'`brackit.algos.make_config("{name}", ...)`; generated from the dataclass (`brackit algos {name}` '
        "prints the same). A value outside its range is refused when the config is built.",
        "",
        "",
        '<div class="config-table" markdown>',
        "",
        "| field | type | default | range | meaning |",
        "|---|---|---|---|---|",
    ]
    for field, default, doc in config_field_docs(algorithm.config_cls):
        kind, valid = facts[field]
        lines.append(f"| `{field}` | `{kind}` | `{default}` | {_cell(valid)} | {_cell(doc)} |")
    lines += ["", "</div>"]
    rules = rule_texts(algorithm.config_cls)
    if rules:
        lines += ["", "Rules across fields, checked when the config is built:", ""]
        lines += [f"- {_cell(rule)}" for rule in rules]
    return "\n".join(lines) + "\n"


def algorithms_table() -> str:
    """The registry as a table: name, description, config class, evaluation rule, pretraining."""
    from brackit.algos import ALGORITHMS

    pages = {"sac_offline": "sac-offline"}
    lines = [
        "| name | what | config | evaluation rule | page |",
        "|---|---|---|---|---|",
    ]
    for name, algorithm in ALGORITHMS.items():
        page = pages.get(name, name)
        lines.append(
            f"| `{name}` | {_cell(algorithm.description)} | `{algorithm.config_cls.__name__}` "
            f"| `{algorithm.eval_mode}` | [{name}]({page}.md) |"
        )
    return "\n".join(lines) + "\n"


def budgets_table() -> str:
    """The study budgets (``brackit.study.BUDGETS``): the caps each puts on a study's values."""
    from brackit.study import BUDGETS

    caps = ("steps", "seeds", "dataset_size", "eval_every", "eval_episodes", "chunk_steps")
    lines = [
        "| budget | " + " | ".join(cap.replace("_", " ") for cap in caps) + " | for |",
        "|---" * (len(caps) + 2) + "|",
    ]
    for name, budget in BUDGETS.items():
        values = [
            f"{value:,}" if value is not None else "study's" for value in map(budget.__getattribute__, caps)
        ]
        lines.append(f"| `{name}` | " + " | ".join(values) + f" | {_cell(budget.description)} |")
    return "\n".join(lines) + "\n"


def expand_markers(markdown: str, where: str = "<page>") -> str:
    """Replaces every ``<!-- brackit:KIND [ARG] -->`` by what it generates."""

    def replace(match: re.Match[str]) -> str:
        kind, argument = match.group(1), match.group(2)
        if kind == "config" and argument:
            return config_table(argument)
        if kind == "algorithms" and not argument:
            return algorithms_table()
        if kind == "budgets" and not argument:
            return budgets_table()
        raise DocsError(f"{where}: unknown marker {match.group(0)!r}")

    return MARKER.sub(replace, markdown)


def missing_config_tables(docs_dir: Path = DOCS) -> list[str]:
    """The algorithms of the registry that no page shows the config table of."""
    from brackit.algos import ALGORITHMS

    shown = {
        match.group(2)
        for page in docs_dir.rglob("*.md")
        for match in MARKER.finditer(page.read_text(encoding="utf-8"))
        if match.group(1) == "config"
    }
    return sorted(set(ALGORITHMS) - shown)


# ----------------------------------------------------------------------------------------- CLI reference


def cli_markdown() -> str:
    """The command-line reference: typer's markdown for ``brackit.cli.app`` (``typer ... utils docs``),
    with each command list's one-line helps whole (typer cuts them at 45 characters)."""
    import typer
    import typer.main
    from typer.cli import get_docs_for_click

    from brackit.cli import app

    command = typer.main.get_command(app)
    body = get_docs_for_click(obj=command, ctx=typer.Context(command), name="brackit", title="Command line")
    lines, group = [], command
    for line in body.strip().splitlines():
        if heading := re.match(r"^#+ `brackit((?: [\w-]+)*)`$", line):
            group = command
            for name in heading.group(1).split():
                group = group.get_command(None, name)
        elif (item := re.match(r"^\* `(\w[\w-]*)`: ", line)) and hasattr(group, "get_command"):
            subcommand = group.get_command(None, item.group(1))  # a command of the group, not an option
            line = f"* `{item.group(1)}`: {subcommand.get_short_help_str(limit=1000)}"
        lines.append(line)
    note = (
        "Generated from the typer app `brackit.cli.app` when the site is built (what `brackit COMMAND "
        "--help` prints). A usage or user error prints one line and exits with status 2."
    )
    return "\n".join([lines[0], "", note, "", *lines[1:]]).strip() + "\n"


# ----------------------------------------------------------------------------------------- repository files


def _is_relative(target: str) -> bool:
    return not (target.startswith(("#", "/")) or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target))


def repository_links(markdown: str, src_uri: str) -> list[tuple[str, str]]:
    """(link target, repository path) of every relative link of page ``docs/<src_uri>`` that leaves
    ``docs/``; the path is relative to the repository root."""
    links = []
    for match in LINK.finditer(markdown):
        target = match.group(2)
        if not _is_relative(target):
            continue
        path = posixpath.normpath(posixpath.join("docs", posixpath.dirname(src_uri), target.split("#")[0]))
        if not path.startswith("docs/") and path != "docs":
            links.append((target, path))
    return links


def site_uri(repository_path: str) -> str:
    """Where a repository file is published in the site: markdown and images as themselves, any other
    text file as a generated page ``<name>.md`` that shows it."""
    published = f"{PUBLISHED}/{repository_path}"
    return published if repository_path.endswith((".md", *IMAGES)) else published + ".md"


def rewrite_repository_links(markdown: str, src_uri: str) -> str:
    """Points the page's links into the repository at the published copies (``site_uri``)."""

    def replace(match: re.Match[str]) -> str:
        target = match.group(2)
        if not _is_relative(target):
            return match.group(0)
        links = repository_links(match.group(0), src_uri)
        if not links:
            return match.group(0)
        _, path = links[0]
        anchor = target[len(target.split("#")[0]) :]
        new = posixpath.relpath(site_uri(path), posixpath.dirname(src_uri) or ".")
        return f"{match.group(1)}{new}{anchor}{match.group(3)}"

    return LINK.sub(replace, markdown)


def results_files(root: Path = ROOT) -> list[str]:
    """Every markdown file and image under ``benchmarks/results/``, but the run directories' contents."""
    base = root / RESULTS
    return sorted(
        path.relative_to(root).as_posix()
        for path in base.rglob("*")
        if path.is_file()
        and path.suffix in (".md", *IMAGES)
        and "runs" not in path.relative_to(base).parts[:-1]
    )


def _title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.name


def results_index(root: Path = ROOT) -> str:
    """``results.md``: every results file, by folder, with its title; numbers stay in the files."""
    lines = [
        "# Results",
        "",
        "Measured numbers live in `benchmarks/results/`, each beside the command, commit and machine that "
        "made it; this site publishes those files as they are in the repository (they are not copied "
        "into the other pages, where they would go stale). Rerun a benchmark to update its file.",
        "",
    ]
    folder = None
    pages = [path for path in results_files(root) if path.endswith(".md")]
    for path in sorted(pages, key=lambda page: (posixpath.dirname(page), page)):
        parent = posixpath.dirname(path)
        if parent != folder:
            folder = parent
            lines += ["", f"## `{parent}/`", ""]
        lines.append(f"- [{_title(root / path)}]({site_uri(path)}) (`{posixpath.basename(path)}`)")
    return "\n".join(lines) + "\n"


def source_page(repository_path: str, root: Path = ROOT) -> str:
    """A page showing a repository text file (a script, a study preset) as it is."""
    text = (root / repository_path).read_text(encoding="utf-8")
    fence = "````" if "```" in text else "```"
    language = LANGUAGES.get(Path(repository_path).suffix, "text")
    return f"# `{repository_path}`\n\n{fence}{language}\n{text.rstrip()}\n{fence}\n"


def mathjax_script() -> Path:
    """MathJax 3's single-file TeX-to-SVG bundle with every TeX extension (no further downloads)."""
    try:
        import mathjax
    except ImportError as error:
        raise DocsError("MathJax is missing: install the docs extra (pip install -e '.[docs]')") from error
    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / "tex-svg-full.js"


# ----------------------------------------------------------------------------------------- docstring prose


def prose_to_markdown(lines: list[str]) -> list[str]:
    """A blank line before a list that follows a paragraph line; a line's closing RST ``::`` as ``:``.

    Only lists at the margin count (indented lines are code or continuations); fenced code is left alone.
    """
    out: list[str] = []
    fence = None
    for index, line in enumerate(lines):
        if fence is not None:
            fence = None if line.strip().startswith(fence) else fence
            out.append(line)
            continue
        if match := FENCE.match(line):
            fence = match.group(1)
            out.append(line)
            continue
        previous = out[-1] if out else ""
        if LIST_ITEM.match(line) and previous.strip() and not previous[:1].isspace():
            if not LIST_ITEM.match(previous):
                out.append("")
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if line.rstrip().endswith("::") and not line[:1].isspace() and not following.strip():
            line = line.rstrip()[:-1]
        out.append(line)
    return out


def _prose_extension() -> Any:
    from markdown.extensions import Extension
    from markdown.preprocessors import Preprocessor

    class ProsePreprocessor(Preprocessor):
        def run(self, lines: list[str]) -> list[str]:
            return prose_to_markdown(lines)

    class ProseExtension(Extension):
        def extendMarkdown(self, md: Any) -> None:
            # before the fenced-code preprocessor (priority 25), after whitespace normalisation (30)
            md.preprocessors.register(ProsePreprocessor(md), "brackit_prose", 27)

    return ProseExtension()


# ----------------------------------------------------------------------------------------- mkdocs hooks


@event_priority(100)  # first: mkdocstrings builds its docstrings' Markdown from the same extension list
def on_config(config: Any) -> Any:
    config.markdown_extensions.append(_prose_extension())
    return config


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    missing = missing_config_tables(Path(config["docs_dir"]))
    if missing:
        raise DocsError(f"no page shows the config table of {missing}: add <!-- brackit:config NAME -->")
    files.append(File.generated(config, "cli.md", content=cli_markdown()))
    files.append(File.generated(config, "results.md", content=results_index()))
    files.append(File.generated(config, "assets/mathjax/tex-svg-full.js", abs_src_path=str(mathjax_script())))
    published = set(results_files())
    for page in files.documentation_pages():
        if page.generated_by is None:  # a page of docs/
            for target, path in repository_links(page.content_string, page.src_uri):
                if not (ROOT / path).is_file():
                    raise DocsError(f"docs/{page.src_uri}: link {target!r}: no file {path} in the repository")
                published.add(path)
    for path in sorted(published):
        if site_uri(path).endswith(".md") and not path.endswith(".md"):
            files.append(File.generated(config, site_uri(path), content=source_page(path)))
        else:
            files.append(File.generated(config, site_uri(path), abs_src_path=str(ROOT / path)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.generated_by is not None:  # generated here, or a published repository file
        return markdown
    return rewrite_repository_links(expand_markers(markdown, f"docs/{page.file.src_uri}"), page.file.src_uri)

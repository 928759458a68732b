"""Sphinx directives that generate invkit's reference pages and examples from the code itself.

* ``invkit-cli``: every command and option of the ``invkit`` CLI, from
  :func:`invkit.cli.main.build_parser` (so the page cannot drift from the parser).
* ``invkit-config``: every config key, with type, default and the comment next to it in
  :mod:`invkit.config`; ``invkit-presets``: the core presets and the reference problems' ones.
* ``invkit-console``: runs shell commands at build time (``invkit ...`` with the interpreter
  that runs Sphinx) and shows each with its real output. ``invkit-file`` and
  ``invkit-figure`` show a file or an image that such a command wrote.

Commands run in one working folder per state of the source code, under
``docs/_build/.invkit-exec/<hash>/work``; each command runs once per source state (its output
and the files it wrote are recorded), so the HTML and doctest builds share the runs and a
rebuild with unchanged code runs nothing. Change any ``.py`` file of invkit, its reference
plugins or the example plugin and every command runs again.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

EXEC_VERSION = "1"  # bump to invalidate every recorded command output
REPO = Path(__file__).resolve().parents[2]
SOURCE_GLOBS = ("invkit/**/*.py", "plugins/**/*.py", "examples/*/src/**/*.py", "docs/_ext/*.py")
MAX_SNAPSHOT_BYTES = 20 * 2**20


# -- small node builders ------------------------------------------------------------------------
def _para(*children: nodes.Node | str) -> nodes.paragraph:
    p = nodes.paragraph()
    for c in children:
        p += nodes.Text(c) if isinstance(c, str) else c
    return p


def _table(headers: list[str], rows: list[list[Any]], widths: list[int] | None = None,
           classes: tuple[str, ...] = ()) -> nodes.table:
    """A table; a cell is a string (plain text), a node, or a list of nodes/strings."""
    table = nodes.table(classes=["invkit-table", *classes])
    group = nodes.tgroup(cols=len(headers))
    table += group
    for w in widths or [1] * len(headers):
        group += nodes.colspec(colwidth=w)
    head = nodes.thead()
    group += head
    row = nodes.row()
    for h in headers:
        row += nodes.entry("", _para(h))
    head += row
    body = nodes.tbody()
    group += body
    for cells in rows:
        row = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            if isinstance(cell, list):
                entry += _para(*cell) if cell else nodes.paragraph()
            elif isinstance(cell, nodes.Element) and not isinstance(cell, nodes.Inline):
                entry += cell
            else:
                entry += _para(cell)
            row += entry
        body += row
    return table


def _lit(text: str) -> nodes.literal:
    return nodes.literal(text, text)


def _section(directive: SphinxDirective, title: str, anchor: str) -> nodes.section:
    section = nodes.section()
    section += nodes.title(title, title)
    section["names"].append(nodes.fully_normalize_name(anchor))
    directive.state.document.note_implicit_target(section, section)
    return section


def _note_sources(directive: SphinxDirective, *modules: Any) -> None:
    for module in modules:
        path = getattr(module, "__file__", None)
        if path:
            directive.env.note_dependency(path)


# -- the CLI reference --------------------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _sub_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


def _argument_rows(parser: argparse.ArgumentParser) -> list[list[Any]]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            names = ", ".join(action.option_strings)
            if action.nargs != 0:
                metavar = action.metavar or (action.dest.upper())
                names += f" {metavar}"
        else:
            names = action.metavar or action.dest
        details = []
        if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
            details.append("choices: " + ", ".join(str(c) for c in action.choices))
        if isinstance(action, argparse._AppendAction):
            details.append("repeatable")
        if action.required and action.option_strings:
            details.append("required")
        if action.nargs == "?" and not action.option_strings:
            details.append("optional")
        default = action.default
        if (action.nargs != 0 and default not in (None, argparse.SUPPRESS)
                and not isinstance(action, argparse._VersionAction)):
            details.append(f"default: {default}")
        help_text = (action.help or "") % {"default": default, "prog": parser.prog} \
            if action.help and "%(" in action.help else (action.help or "")
        if isinstance(action, argparse._VersionAction):
            help_text = help_text or "show the version and exit"
        rows.append([[_lit(names)], help_text, "; ".join(details)])
    return rows


class InvkitCliDirective(SphinxDirective):
    """Every ``invkit`` command: its usage, description and arguments, from the real parser."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        import invkit.cli as cli
        from invkit.cli import main as cli_main

        _note_sources(self, cli_main, *(sys.modules[f"invkit.cli.{m}"] for m in
                                        ("common", "cmd_list", "cmd_run", "cmd_sample",
                                         "cmd_evaluate", "cmd_baseline")
                                        if f"invkit.cli.{m}" in sys.modules), cli)
        parser = cli_main.build_parser()
        out: list[nodes.Node] = []
        out.append(nodes.literal_block(text=parser.format_usage().strip(), language="text"))
        if parser.description:
            out.append(_para(parser.description))
        out.append(_table(["option", "meaning", "details"], _argument_rows(parser), [3, 6, 3]))
        helps = _sub_help(parser)
        for name, sub in _subparsers(parser).items():
            section = _section(self, f"invkit {name}", f"cli-{name}")
            if helps.get(name):
                section += _para(helps[name][0].upper() + helps[name][1:] + ".")
            if sub.description:
                section += _para(sub.description)
            usage = sub.format_usage().strip()
            section += nodes.literal_block(text=usage, language="text")
            section += _table(["argument", "meaning", "details"], _argument_rows(sub),
                              [3, 6, 3])
            out.append(section)
        return out


# -- the config reference -----------------------------------------------------------------------
# Every key's type, default, allowed values and meaning come from the fields of
# invkit.config.schema (one source for the checks and this page).


def _inline(text: str) -> list[nodes.Node | str]:
    """Plain text with ``code`` or `code` spans turned into literals."""
    import re

    out: list[nodes.Node | str] = []
    pos = 0
    for m in re.finditer(r"``(.+?)``|`([^`]+)`", text):
        if m.start() > pos:
            out.append(text[pos:m.start()])
        out.append(_lit(m.group(1) or m.group(2)))
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out


def _fmt_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:_}"
    return repr(value)


class InvkitConfigDirective(SphinxDirective):
    """Every config key of :mod:`invkit.config`, one table per section."""

    def run(self) -> list[nodes.Node]:
        from invkit import config
        from invkit.config import schema

        _note_sources(self, config, schema)
        specs = config.field_specs()
        headers, widths = ["key", "type", "default", "allowed", "meaning"], [3, 2, 2, 2, 6]

        def rows(keys: list[str]) -> list[list[Any]]:
            return [[[_lit(k)], specs[k].type_name, [_lit(_fmt_value(specs[k].default))],
                     specs[k].allowed(), _inline(specs[k].help)] for k in keys]

        top = _section(self, "Top level", "config-top")
        top += _table(headers, rows(list(config.TOP_LEVEL)), widths)
        out: list[nodes.Node] = [top]
        for section_name, cls in config.SECTIONS.items():
            section = _section(self, f"[{section_name}]", f"config-{section_name}")
            if cls.__doc__:
                section += _para(*_inline(" ".join(cls.__doc__.split())))
            keys = [k for k in specs if k.startswith(section_name + ".")]
            section += _table(headers, rows(keys), widths)
            out.append(section)
        renamed = _section(self, "Renamed keys", "config-renamed")
        renamed += _para("Old names that config files, checkpoints and ", _lit("--set"),
                         " still accept: ", *_join_literals(f"{old} -> {new}" for old, new
                                                            in config.RENAMED.items()), ".")
        out.append(renamed)
        return out


class InvkitPresetsDirective(SphinxDirective):
    """The core presets, and the presets and options of invkit's own problem plugins."""

    def run(self) -> list[nodes.Node]:
        from invkit import config
        from invkit.registry import get_registry

        _note_sources(self, config)
        out: list[nodes.Node] = []
        core = _section(self, "Core presets", "presets-core")
        core += _para("Applied first, to every problem (", _lit("invkit.config.CORE_PRESETS"),
                      "); a key that a preset does not name keeps its default.")
        core += _preset_table(config.CORE_PRESETS, config.PRESETS)
        out.append(core)
        registry = get_registry()
        for name in registry.names("problem"):
            entry = registry.entries["problem"][name]
            if entry.origin.distribution != "invkit":
                continue  # only invkit's own plugins: the page must not depend on what is installed
            spec = entry.obj
            _note_sources(self, sys.modules.get(type(spec.build).__module__),
                          sys.modules.get(spec.build.__module__))
            section = _section(self, f"Problem {name}", f"presets-{name}")
            section += _para(f"{spec.description}. Options (", _lit("--set NAME=VALUE"), "): ",
                             *_join_literals(f"{k}={_fmt_value(v)}"
                                             for k, v in spec.options.items()),
                             ". Its presets, applied after the core ones:")
            section += _preset_table(spec.presets, config.PRESETS)
            out.append(section)
        return out


def _join_literals(items: Any) -> list[nodes.Node | str]:
    out: list[nodes.Node | str] = []
    for i, item in enumerate(items):
        if i:
            out.append(", ")
        out.append(_lit(item))
    return out or ["none"]


def _preset_table(presets: Any, order: tuple[str, ...]) -> nodes.Node:
    keys: list[str] = []
    for preset in order:
        for key in dict(presets.get(preset, {})):
            if key not in keys:
                keys.append(key)
    if not keys:
        return _para("(no overrides)")
    rows = []
    for key in keys:
        row: list[Any] = [[_lit(key)]]
        for preset in order:
            values = dict(presets.get(preset, {}))
            row.append([_lit(_fmt_value(values[key]))] if key in values else "")
        rows.append(row)
    return _table(["key", *order], rows, [3] + [2] * len(order))


# -- running commands at build time -------------------------------------------------------------
def source_hash() -> str:
    """A hash of everything whose change can change a command's output."""
    import torch

    h = hashlib.sha256()
    h.update(f"{EXEC_VERSION} {sys.version} {torch.__version__}".encode())
    files = sorted({p for g in SOURCE_GLOBS for p in REPO.glob(g) if p.is_file()})
    for path in files:
        h.update(str(path.relative_to(REPO)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


class Executor:
    """Runs commands in one working folder per source state, each command at most once."""

    def __init__(self, root: Path, digest: str) -> None:
        self.root = root
        self.base = root / digest
        self.work = self.base / "work"
        self.records = self.base / "records"

    def prepare(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.records.mkdir(parents=True, exist_ok=True)
        for old in self.root.iterdir():  # outputs of older source states
            if old.is_dir() and old != self.base:
                shutil.rmtree(old, ignore_errors=True)

    @staticmethod
    def key(command: str) -> str:
        return hashlib.sha256(command.encode()).hexdigest()[:16]

    def record_path(self, command: str) -> Path:
        return self.records / self.key(command) / "record.json"

    def _files(self) -> dict[str, tuple[float, int]]:
        out = {}
        for p in self.work.rglob("*"):
            if p.is_file() and not p.is_symlink():
                st = p.stat()
                out[str(p.relative_to(self.work))] = (st.st_mtime_ns, st.st_size)
        return out

    def run(self, command: str, expect_rc: int = 0) -> dict[str, Any]:
        import fcntl

        self.prepare()
        path = self.record_path(command)
        with open(self.base / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if path.is_file():
                return json.loads(path.read_text())
            before = self._files()
            logger.info(f"[invkit-docs] running: {command}")
            t0 = time.perf_counter()
            rc, output = self._execute(shlex.split(command))
            wall = time.perf_counter() - t0
            logger.info(f"[invkit-docs] finished in {wall:.1f} s: {command}")
            after = self._files()
            changed = [f for f, stamp in after.items() if before.get(f) != stamp]
            if rc != expect_rc:
                for f in changed:  # leave no half-made run behind
                    if f not in before:
                        (self.work / f).unlink(missing_ok=True)
                return {"command": command, "rc": rc, "output": output, "failed": True}
            snap = path.parent / "files"
            files = {}
            for f in changed:
                src = self.work / f
                if src.stat().st_size <= MAX_SNAPSHOT_BYTES:
                    dst = snap / f
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)
                    files[f] = str(dst)
            record = {"command": command, "rc": rc, "output": output, "files": files,
                      "wall_s": wall}
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record))
            return record

    def _environ(self) -> dict[str, str]:
        return {"COLUMNS": "120", "INVKIT_CACHE": str(self.base / "cache"), "TERM": "dumb",
                "NO_COLOR": "1"}

    def _execute(self, argv: list[str]) -> tuple[int, str]:
        """``invkit ...`` runs in this process (no interpreter start-up per command), with the
        working folder as the current directory and stdout and stderr captured together, as a
        terminal shows them; anything else runs as a subprocess."""
        if not argv or argv[0] != "invkit":
            env = dict(os.environ, **self._environ())
            proc = subprocess.run(argv, cwd=self.work, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, check=False)
            return proc.returncode, proc.stdout
        import traceback

        from invkit.cli.main import main

        buffer = io.StringIO()
        saved_env = {k: os.environ.get(k) for k in self._environ()}
        cwd = os.getcwd()
        try:
            os.environ.update(self._environ())
            os.chdir(self.work)
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
                try:
                    rc = int(main(argv[1:]) or 0)
                except SystemExit as exc:  # argparse errors and --help
                    rc = exc.code if isinstance(exc.code, int) else 1
                except Exception:
                    traceback.print_exc()
                    rc = 1
        finally:
            os.chdir(cwd)
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return rc, buffer.getvalue()


def executor(env: Any) -> Executor:
    return Executor(Path(env.srcdir) / "_build" / ".invkit-exec", env.config.invkit_exec_hash)


def _clean_output(text: str) -> str:
    lines = [line.rstrip() for line in text.rstrip().splitlines()]
    return "\n".join(lines)


class _ExecMixin(SphinxDirective):
    def _run(self, command: str, expect_rc: int = 0) -> dict[str, Any] | None:
        ex = executor(self.env)
        record = ex.run(command, expect_rc)
        if record.get("failed"):
            tail = "\n".join(record["output"].splitlines()[-25:])
            logger.warning(f"command {command!r} exited with {record['rc']} (expected "
                           f"{expect_rc}); its output ends with:\n{tail}",
                           location=self.get_location())
            return None
        # re-read this page when the source state changes (the old record is deleted then)
        self.env.note_dependency(str(ex.record_path(command)))
        return record


class InvkitConsoleDirective(_ExecMixin):
    """Run each line of the content as a command; show ``$ command`` and its output.

    Options: ``:returncode:`` the exit code the (last) command must give (default 0, e.g. 2
    to show an error message); ``:after:`` commands to run first without showing them
    (separated by ``;;``); ``:hide-output:`` show the commands only.
    """

    has_content = True
    option_spec = {"returncode": directives.nonnegative_int, "after": directives.unchanged,
                   "hide-output": directives.flag}

    def run(self) -> list[nodes.Node]:
        for before in _split_after(self.options.get("after")):
            if self._run(before) is None:
                return []
        commands = [c.strip() for c in self.content if c.strip()]
        parts = []
        for i, command in enumerate(commands):
            expect = self.options.get("returncode", 0) if i == len(commands) - 1 else 0
            record = self._run(command, expect)
            if record is None:
                return []
            parts.append(f"$ {command}")
            if "hide-output" not in self.options and record["output"].strip():
                parts.append(_clean_output(record["output"]))
        block = nodes.literal_block(text="\n".join(parts), language="console")
        block["classes"].append("invkit-console")
        return [block]


def _split_after(text: str | None) -> list[str]:
    return [c.strip() for c in (text or "").split(";;") if c.strip()]


class InvkitFileDirective(_ExecMixin):
    """Show a text file (relative to the working folder) as written by the ``:after:`` command.

    Options: ``:language:`` for highlighting; ``:lines:`` a Python slice such as ``0:20``.
    """

    required_arguments = 1
    option_spec = {"after": directives.unchanged_required, "language": directives.unchanged,
                   "lines": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        path = self._snapshot(self.arguments[0])
        if path is None:
            return []
        text = Path(path).read_text()
        if "lines" in self.options:
            a, _, b = self.options["lines"].partition(":")
            lines = text.splitlines()[int(a) if a else None:int(b) if b else None]
            text = "\n".join(lines) + "\n..."
        block = nodes.literal_block(text=text.rstrip(), language=self.options.get("language",
                                                                                  "text"))
        block["classes"].append("invkit-file")
        return [block]

    def _snapshot(self, rel: str) -> str | None:
        records = [self._run(c) for c in _split_after(self.options.get("after"))]
        if not records or any(r is None for r in records):
            if not records:
                logger.warning(f"{self.name} needs :after: (the command that writes {rel})",
                               location=self.get_location())
            return None
        for record in reversed(records):
            if rel in record["files"]:
                return record["files"][rel]
        logger.warning(f"{rel!r} was not written by {self.options['after']!r}; it wrote: "
                       f"{', '.join(sorted(records[-1]['files'])) or 'nothing'}",
                       location=self.get_location())
        return None


class InvkitFigureDirective(InvkitFileDirective):
    """An image written by the ``:after:`` command, with the content as its caption."""

    has_content = True
    option_spec = {"after": directives.unchanged_required, "width": directives.unchanged,
                   "alt": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        path = self._snapshot(self.arguments[0])
        if path is None:
            return []
        rel = "/" + str(Path(path).relative_to(Path(self.env.srcdir)))
        figure = nodes.figure(classes=["invkit-figure"])
        image = nodes.image(uri=rel, alt=self.options.get("alt", self.arguments[0]))
        if "width" in self.options:
            image["width"] = self.options["width"]
        figure += image
        if self.content:
            caption_text = " ".join(line.strip() for line in self.content)
            parsed, _ = self.parse_inline(caption_text, lineno=self.lineno)
            caption = nodes.caption(caption_text, "", *parsed)
            figure += caption
        return [figure]


# -- setup --------------------------------------------------------------------------------------
def _check_example_installed(app: Sphinx) -> None:
    from importlib import metadata

    try:
        metadata.distribution("invkit-linear-gaussian")
    except metadata.PackageNotFoundError:
        raise RuntimeError(
            "The docs run the example plugin: install it first with "
            "'pip install -e examples/invkit-linear-gaussian'."
        ) from None


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("invkit_exec_hash", "", "env")
    app.add_directive("invkit-cli", InvkitCliDirective)
    app.add_directive("invkit-config", InvkitConfigDirective)
    app.add_directive("invkit-presets", InvkitPresetsDirective)
    app.add_directive("invkit-console", InvkitConsoleDirective)
    app.add_directive("invkit-file", InvkitFileDirective)
    app.add_directive("invkit-figure", InvkitFigureDirective)
    app.connect("builder-inited", _check_example_installed)
    return {"version": EXEC_VERSION, "parallel_read_safe": True, "parallel_write_safe": True}

"""``invkit list``: every registered problem, prior, forward process and baseline."""

from __future__ import annotations

import argparse
from typing import Any

from invkit.cli.common import console


def add_list(sub: Any) -> None:
    p = sub.add_parser("list", help="every registered problem, prior, forward process, baseline")
    p.set_defaults(handler=cmd_list)


LIST_TITLES = {
    "prior": "priors",
    "forward process": "forward processes",
    "problem": "problems (invkit run NAME)",
    "baseline": "baselines (invkit baseline NAME PROBLEM)",
}


def cmd_list(args: argparse.Namespace) -> int:
    import warnings

    from rich import box
    from rich.table import Column, Table
    from rich.text import Text

    from invkit.errors import InvkitWarning, join_sentences
    from invkit.registry import KINDS, get_registry

    reg = get_registry()
    out = console()
    for kind in KINDS:
        if not reg.names(kind):
            out.print(f"{LIST_TITLES[kind]}: none", highlight=False)
            continue
        # names are what users type: never cut or wrapped (at 80 columns or piped, too);
        # the descriptions wrap instead, and a long distribution name folds
        table = Table(Column("name", no_wrap=True, style="bold"),
                      Column("plugin (distribution)", overflow="fold"),
                      Column("description", overflow="fold", ratio=1),
                      title=LIST_TITLES[kind], title_justify="left", box=box.SIMPLE_HEAD,
                      pad_edge=False, expand=True)
        for name in reg.names(kind):
            e = reg.entries[kind][name]
            obj = e.obj
            about = Text(obj.description)
            dims = ""
            if hasattr(obj, "dim"):
                dims = f"x: {obj.dim}"
            elif hasattr(obj, "dim_x"):
                dims = f"x: {obj.dim_x} -> y: {obj.dim_y}"
            if kind in ("problem", "baseline") and obj.options:
                dims = "options: " + ", ".join(f"{k}={v!r}" for k, v in obj.options.items())
            if dims:
                about.append(("\n" if obj.description else "") + dims, style="dim")
            version = f" {e.origin.version}" if e.origin.version else ""
            table.add_row(Text(name), Text(f"{e.origin.plugin}\n{e.origin.distribution}{version}"),
                          about)
        out.print(table)
    # on stderr, as 'warning: ...' (main prints InvkitWarnings so): the tables stay clean
    for f in reg.failed:
        warnings.warn(InvkitWarning(join_sentences(
            f.describe(), "It was skipped; the plugins listed above work")), stacklevel=1)
    for w in reg.warnings:
        warnings.warn(InvkitWarning(w.message), stacklevel=1)
    return 0

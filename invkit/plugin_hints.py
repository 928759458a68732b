"""Messages for the two most common mistakes in a plugin module: a misspelt hook name, and a
hook function without the ``@invkit.hookimpl`` decorator (which pluggy silently skips)."""

from __future__ import annotations

import difflib
import inspect
import re

import pluggy

from invkit import hookspecs
from invkit.errors import suggest

HOOK_NAMES = ("invkit_register_priors", "invkit_register_forward_processes",
              "invkit_register_problems", "invkit_register_baselines")


def hook_hint(message: str) -> str:
    """pluggy's message for a misspelt hook, with the memory address dropped and a suggestion."""
    hooks = list(HOOK_NAMES)
    m = re.search(r"unknown hook '([^']+)'", message)
    if not m:
        return message
    return (f"it implements an unknown hook {m.group(1)!r}.{suggest(m.group(1), hooks)} "
            f"The hooks are: {', '.join(hooks)}.")


def undecorated_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """Functions of ``plugin`` named like invkit hooks (or close to it) that pluggy did not take
    as hook implementations because ``@invkit.hookimpl`` is missing."""
    hooks = list(HOOK_NAMES)
    found = []
    for attr in dir(plugin):
        if not attr.startswith("invkit_"):
            continue
        if attr not in hooks and not attr.startswith("invkit_register") \
                and not difflib.get_close_matches(attr, hooks, n=1, cutoff=0.8):
            continue
        try:
            value = inspect.getattr_static(plugin, attr)
        except AttributeError:
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if not (inspect.isfunction(value) or inspect.ismethod(value)):
            continue
        if getattr(value, hookspecs.PROJECT + "_spec", None) is not None:
            continue  # a hookspec imported into the module, not an attempt at a hook
        if pm.parse_hookimpl_opts(plugin, attr) is None:
            found.append(attr)
    return found


def undecorated_message(origin: object, plugin: object, names: list[str]) -> str:
    if inspect.ismodule(plugin):
        where = f"module {plugin.__name__}"
    else:
        cls = plugin if isinstance(plugin, type) else type(plugin)
        where = f"{cls.__module__}.{cls.__qualname__}"
    hooks = list(HOOK_NAMES)
    listed = ", ".join(names)
    one = len(names) == 1
    misspelt = "".join(f" {n!r} is not a hook name either.{suggest(n, hooks)}"
                       for n in names if n not in hooks)
    who = str(origin)
    it = "it" if one else "them"
    return (f"{who[:1].upper()}{who[1:]}: {where} defines {listed} without the "
            f"@invkit.hookimpl decorator, so invkit does not call {it} and registers nothing "
            f"from {it}. Put @invkit.hookimpl (after 'import invkit') on the line above each "
            f"'def'.{misspelt}")



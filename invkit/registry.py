"""Discovers plugins through entry points and keeps what they register, validated.

Environment variables:

* ``INVKIT_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry points at all (register plugins
  in code with :func:`Registry.add_plugin`).
* ``INVKIT_PLUGINS=gmm,my_problem``: load only the entry points with these names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any

import pluggy

from invkit import hookspecs
from invkit.config import coerce
from invkit.errors import InvkitError, PluginError, join_sentences, sentence, suggest
from invkit.plugin_hints import hook_hint, undecorated_hooks, undecorated_message
from invkit.problem import Baseline, ForwardProcess, Prior, Problem, ProblemSpec
from invkit.simulation.file_problem import FILE_PROBLEM_SPEC
from invkit.validation import check_problem, check_process_kind
from invkit.version import __version__

ENTRY_POINT_GROUP = "invkit"
KINDS = ("prior", "forward process", "problem", "baseline")
_HOOKS = {
    "prior": ("invkit_register_priors", Prior),
    "forward process": ("invkit_register_forward_processes", ForwardProcess),
    "problem": ("invkit_register_problems", ProblemSpec),
    "baseline": ("invkit_register_baselines", Baseline),
}


@dataclass(frozen=True)
class Origin:
    """Where a registered thing came from, for listings and error messages."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        version = f" {self.version}" if self.version else ""
        return f"plugin {self.plugin!r} (distribution {self.distribution}{version})"


@dataclass
class Entry:
    kind: str
    name: str
    obj: Any
    origin: Origin


@dataclass
class FailedPlugin:
    name: str
    distribution: str
    reason: str
    version: str = ""

    def describe(self) -> str:
        """One sentence: which plugin failed to load, and why."""
        version = f" {self.version}" if self.version else ""
        return (f"Plugin {self.name!r} (distribution {self.distribution}{version}) failed to "
                f"load: {sentence(self.reason)}")


@dataclass
class PluginWarning:
    """A plugin that loaded, but with something that is most likely a mistake in it."""

    name: str
    distribution: str
    message: str


@dataclass
class Registry:
    """Everything registered, by kind and name, plus the plugins that failed to load."""

    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    # a name two distributions both register: neither gets the bare name (whatever the load
    # order); each is reachable as "DISTRIBUTION:NAME"
    ambiguous: dict[str, dict[str, list[Entry]]] = field(
        default_factory=lambda: {k: {} for k in KINDS})
    failed: list[FailedPlugin] = field(default_factory=list)
    warnings: list[PluginWarning] = field(default_factory=list)
    pm: pluggy.PluginManager = field(default_factory=lambda: _new_manager())

    # -- loading -------------------------------------------------------------------------
    def load_entry_points(self, only: Iterable[str] | None = None) -> None:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if only is not None and ep.name not in only:
                continue
            dist = ep.dist.name if ep.dist is not None else "unknown"
            version = ep.dist.version if ep.dist is not None else "?"
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not break the others
                reason = f"{type(exc).__name__}: {exc}"
                self.failed.append(FailedPlugin(ep.name, dist, reason, version))
                continue
            try:
                self.add_plugin(module, name=ep.name, distribution=dist, version=version)
            except PluginError as exc:
                self.failed.append(FailedPlugin(ep.name, dist, str(exc), version))

    def add_plugin(
        self, plugin: object, name: str, distribution: str = "(in code)", version: str = ""
    ) -> None:
        """Register a plugin object or module and collect its registrations, validating each.

        All of a plugin's registrations are checked before any is kept, so a plugin that
        breaks the contract adds nothing. Functions named like hooks but lacking
        ``@invkit.hookimpl`` (pluggy silently skips them) are noted in :attr:`warnings`.
        """
        origin = Origin(name, distribution, version)
        if self.pm.is_registered(plugin) or self.pm.has_plugin(name):
            raise PluginError(f"{origin} is already registered.")
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"{origin} does not fit the plugin contract: "
                              f"{hook_hint(str(exc))}") from None
        try:
            self.pm.check_pending()
            staged: list[Entry] = []
            for kind, (hook_name, cls) in _HOOKS.items():
                hook = getattr(self.pm.hook, hook_name)
                impls = [i for i in hook.get_hookimpls() if i.plugin is plugin]
                for impl in impls:
                    collected: list[Any] = []
                    try:
                        impl.function(collected.append)
                    except PluginError:
                        raise
                    except Exception as exc:
                        raise PluginError(
                            f"{origin} failed in its hook {hook_name}: "
                            f"{type(exc).__name__}: {exc}"
                        ) from exc
                    for obj in collected:
                        staged.append(_validated(kind, cls, obj, origin))
            seen: set[tuple[str, str]] = set()
            for entry in staged:
                key = (entry.kind, entry.name)
                clash = [e for e in self._all(entry.kind, entry.name)
                         if dist_key(e.origin.distribution) == dist_key(distribution)]
                if clash or key in seen:
                    other = clash[0].origin if clash else origin
                    raise PluginError(
                        f"{origin} registers a {entry.kind} named {entry.name!r}, but {other} "
                        f"already registered one. Names must be unique within a "
                        f"distribution: rename one of them."
                    )
                seen.add(key)
        except Exception as exc:
            self.pm.unregister(plugin)
            if isinstance(exc, PluginError):
                raise
            raise PluginError(
                f"{origin} breaks the plugin contract: {hook_hint(str(exc))}"
            ) from None
        for entry in staged:
            self._keep(entry)
        undecorated = undecorated_hooks(self.pm, plugin)
        if undecorated:
            self.warnings.append(PluginWarning(name, distribution,
                                               undecorated_message(origin, plugin, undecorated)))

    def _all(self, kind: str, name: str) -> list[Entry]:
        """Every registration of ``name`` of this kind (two or more when it is ambiguous)."""
        if name in self.ambiguous[kind]:
            return list(self.ambiguous[kind][name])
        return [self.entries[kind][name]] if name in self.entries[kind] else []

    def _keep(self, entry: Entry) -> None:
        kind, name = entry.kind, entry.name
        others = self._all(kind, name)
        if not others:
            self.entries[kind][name] = entry
            return
        # a clash between distributions: the bare name goes to neither, deterministically
        self.entries[kind].pop(name, None)
        every = others + [entry]
        self.ambiguous[kind][name] = every
        for e in every:
            self.entries[kind][qualified(e)] = e
        listed = " and ".join(f"{e.origin} as {qualified(e)!r}" for e in every)
        self.warnings = [w for w in self.warnings if not w.message.startswith(
            f"The {kind} name {name!r}")]
        self.warnings.append(PluginWarning(
            entry.origin.plugin, entry.origin.distribution,
            f"The {kind} name {name!r} is registered by {len(every)} distributions, so neither "
            f"may use it alone: ask for {listed} (or uninstall one of them)."))

    # -- lookup --------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def has(self, kind: str, name: str) -> bool:
        """Whether ``name`` is registered (an ambiguous name counts: looking it up explains)."""
        return name in self.entries[kind] or name in self.ambiguous[kind]

    def entry(self, kind: str, name: str) -> Entry:
        table = self.entries[kind]
        if name in self.ambiguous[kind]:
            listed = ", ".join(f"{qualified(e)!r} ({e.origin})"
                               for e in self.ambiguous[kind][name])
            raise InvkitError(f"The {kind} name {name!r} is registered by several "
                              f"distributions: {listed}. Ask for one of them by its qualified "
                              f"name, e.g. 'invkit run {qualified(self.ambiguous[kind][name][0])}'"
                              f", or uninstall the one you do not want.")
        if name not in table:
            known = ", ".join(sorted(table)) or "none"
            hint = suggest(name, table)
            raise InvkitError(join_sentences(
                f"Unknown {kind} {name!r}.{hint} Registered {kind}s: {known}",
                "Run 'invkit list' to see every plugin", self.trouble()))
        return table[name]

    def trouble(self) -> str:
        """The plugins that failed to load and the warnings about loaded ones, as sentences
        (empty when all is well): what an "unknown problem" may be explained by."""
        return join_sentences(*(f.describe() for f in self.failed),
                              *(w.message for w in self.warnings))

    def problem_spec(self, name: str) -> ProblemSpec:
        return self.entry("problem", name).obj

    def baseline(self, name: str) -> Baseline:
        return self.entry("baseline", name).obj

    def build_problem(self, name: str, options: dict[str, Any] | None = None) -> Problem:
        """Build a problem with its options, resolve named parts, and check it on a small batch."""
        entry = self.entry("problem", name)
        spec: ProblemSpec = entry.obj
        opts = resolve_options(spec.options, options or {}, f"problem {name!r}")
        try:
            problem = spec.build(**opts)
        except InvkitError:
            raise
        except Exception as exc:
            raise PluginError(
                f"{entry.origin} failed to build problem {name!r} with options {opts}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(problem, Problem):
            raise PluginError(
                f"{entry.origin}: the builder of problem {name!r} returned "
                f"{type(problem).__name__}, expected invkit.Problem."
            )
        if problem.name != spec.name:
            raise PluginError(
                f"{entry.origin}: the builder of problem {spec.name!r} returned a Problem named "
                f"{problem.name!r}. A problem is known by the name its ProblemSpec registers: "
                f"build it with name={spec.name!r}."
            )
        if problem.options and dict(problem.options) != opts:
            raise PluginError(
                f"{entry.origin}: the builder of problem {name!r} returned options "
                f"{dict(problem.options)}, but it was built with {opts}. Leave Problem.options "
                f"empty: invkit records the options the problem was built with."
            )
        prior = problem.prior
        if isinstance(prior, str):
            prior = self._referenced("prior", prior, name, entry.origin)
        forward = problem.forward
        if isinstance(forward, str):
            forward = self._referenced("forward process", forward, name, entry.origin)
        problem = replace(problem, prior=prior, forward=forward, options=opts)
        check_problem(problem, entry.origin)
        return problem

    def _referenced(self, kind: str, ref: str, problem: str, origin: Origin) -> Any:
        own = [e for e in self.ambiguous[kind].get(ref, [])
               if dist_key(e.origin.distribution) == dist_key(origin.distribution)]
        if own:  # a name several distributions register: a problem means its own one
            return own[0].obj
        try:
            return self.entry(kind, ref).obj
        except InvkitError as exc:
            raise PluginError(f"{origin}: problem {problem!r} refers to {kind} {ref!r}, "
                              f"which no loaded plugin registers. {exc}") from None

    def origin(self, kind: str, name: str) -> Origin:
        return self.entry(kind, name).origin


def qualified(entry: Entry) -> str:
    """The unambiguous name of a registration: 'DISTRIBUTION:NAME'."""
    return f"{entry.origin.distribution}:{entry.name}"


def dist_key(name: str) -> str:
    """A distribution name as pip compares them: case, '-', '_' and '.' do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve_options(
    declared: dict[str, Any] | Any, given: dict[str, Any], owner: str
) -> dict[str, Any]:
    """Merge given options over declared defaults, converting values to the default's type."""
    declared = dict(declared)
    out = dict(declared)
    for key, value in given.items():
        if key not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise InvkitError(
                f"{owner} has no option {key!r}.{suggest(key, declared)} Its options: {known}."
            )
        out[key] = coerce(value, declared[key], f"{owner} option {key!r}")
    return out


def _validated(kind: str, cls: type, obj: Any, origin: Origin) -> Entry:
    if not isinstance(obj, cls):
        raise PluginError(
            f"{origin} registered a {type(obj).__name__} with the {kind} hook; expected "
            f"invkit.{cls.__name__}. Pass an invkit.{cls.__name__}(...) to register()."
        )
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name or not name.replace("-", "_").isidentifier():
        raise PluginError(
            f"{origin} registered a {kind} with the name {name!r}; names must be non-empty "
            f"identifiers (letters, digits, '_' or '-'), e.g. 'my_problem'."
        )
    for dim_attr in ("dim", "dim_x", "dim_y"):
        if hasattr(obj, dim_attr):
            dim = getattr(obj, dim_attr)
            if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
                raise PluginError(
                    f"{origin} registered {kind} {name!r} with {dim_attr}={dim!r}; "
                    f"expected a positive int (the number of columns of its tensors)."
                )
    for fn_attr in ("sample_fn", "fn", "build", "run"):
        if hasattr(obj, fn_attr) and not callable(getattr(obj, fn_attr)):
            raise PluginError(
                f"{origin} registered {kind} {name!r} whose {fn_attr} is not callable."
            )
    if isinstance(obj, ForwardProcess):
        check_process_kind(obj, str(origin))
    return Entry(kind, name, obj, origin)


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


class _BuiltIn:
    """What the core itself provides: the problem ``file`` (pairs from a file of simulations,
    no plugin to write; :mod:`invkit.simulation.file_problem`)."""

    @hookspecs.hookimpl
    def invkit_register_problems(self, register: Callable[[ProblemSpec], None]) -> None:
        register(FILE_PROBLEM_SPEC)


_DEFAULT: Registry | None = None


def get_registry(reload: bool = False) -> Registry:
    """The process-wide registry, loading entry points on first use (see module docstring)."""
    global _DEFAULT
    if _DEFAULT is None or reload:
        reg = Registry()
        reg.add_plugin(_BuiltIn(), name="builtin", distribution="invkit", version=__version__)
        if os.environ.get("INVKIT_DISABLE_PLUGIN_AUTOLOAD", "").strip() in ("", "0"):
            only_env = os.environ.get("INVKIT_PLUGINS", "").strip()
            only = {s.strip() for s in only_env.split(",") if s.strip()} if only_env else None
            reg.load_entry_points(only)
        _DEFAULT = reg
    return _DEFAULT


def get_problem(name: str, **options: Any) -> Problem:
    """A registered problem, built with options: ``get_problem("gmm", labels="some")``."""
    return get_registry().build_problem(name, options)

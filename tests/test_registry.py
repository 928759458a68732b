"""Plugin discovery through entry points, and the contract enforced at registration."""

import types

import pytest
import torch

import invkit
import invkit.registry as registry_module
from invkit import ForwardProcess, Prior, Problem, ProblemSpec
from invkit.errors import InvkitError, PluginError
from invkit.registry import Registry, get_registry


def test_reference_plugins_come_from_entry_points():
    reg = Registry()
    reg.load_entry_points()
    assert "gmm" in reg.names("problem")
    origin = reg.origin("problem", "gmm")
    assert origin.plugin == "gmm" and origin.distribution == "invkit"
    assert "gmm_prior" in reg.names("prior")


def test_only_named_plugins(monkeypatch):
    monkeypatch.setenv("INVKIT_PLUGINS", "gmm")
    reg = get_registry(reload=True)
    try:
        assert reg.names("problem") == ["file", "gmm"]  # the core's own file problem stays
    finally:
        monkeypatch.delenv("INVKIT_PLUGINS")
        get_registry(reload=True)


def test_autoload_can_be_disabled(monkeypatch):
    monkeypatch.setenv("INVKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    try:
        assert get_registry(reload=True).names("problem") == ["file"]  # built in, no plugin
    finally:
        monkeypatch.delenv("INVKIT_DISABLE_PLUGIN_AUTOLOAD")
        get_registry(reload=True)


def _prior(name="p", dim=2, fn=None):
    return Prior(name=name, dim=dim,
                 sample_fn=fn or (lambda n, g: torch.randn(n, dim, generator=g)))


class Good:
    @invkit.hookimpl
    def invkit_register_priors(self, register):
        register(_prior("lin_prior"))

    @invkit.hookimpl
    def invkit_register_forward_processes(self, register):
        register(ForwardProcess("lin_fwd", 2, 1, lambda x: x.sum(1, keepdim=True)))

    @invkit.hookimpl
    def invkit_register_problems(self, register):
        register(ProblemSpec("lin", lambda scale=1.0: Problem("lin", "lin_prior", "lin_fwd",
                                                               noise_std=0.1 * scale),
                             options={"scale": 1.0}))


def test_good_plugin_builds_with_options():
    reg = Registry()
    reg.add_plugin(Good(), name="good", distribution="good-dist", version="1.0")
    p = reg.build_problem("lin", {"scale": "2"})
    assert p.noise_std == pytest.approx(0.2) and p.dim_x == 2 and p.dim_y == 1
    with pytest.raises(InvkitError, match="no option 'scael'.*Did you mean 'scale'"):
        reg.build_problem("lin", {"scael": 1})


def test_unknown_problem_suggests():
    reg = Registry()
    reg.add_plugin(Good(), name="good")
    with pytest.raises(InvkitError, match="Did you mean 'lin'"):
        reg.build_problem("lni")


@pytest.mark.parametrize("order", [("dist-a", "dist-b"), ("dist-b", "dist-a")])
def test_a_name_clash_between_distributions_is_never_silent(order):
    """Neither distribution silently wins, whatever the load order: the bare name is refused
    with both named, and each stays reachable by its qualified name."""
    reg = Registry()
    for dist in order:
        reg.add_plugin(Good(), name=f"plugin-{dist}", distribution=dist)
    assert sorted(reg.names("problem")) == ["dist-a:lin", "dist-b:lin"]
    with pytest.raises(InvkitError, match=r"'lin' is registered by several distributions: "
                                          r"'dist-.:lin'.*'dist-.:lin'"):
        reg.build_problem("lin")
    assert "registered by 2 distributions" in reg.trouble()
    for dist in ("dist-a", "dist-b"):
        problem = reg.build_problem(f"{dist}:lin")
        assert problem.name == "lin"
        assert reg.origin("problem", f"{dist}:lin").distribution == dist
        # a problem's named parts resolve to its own distribution's
        assert problem.prior_distribution is reg.entry("prior", f"{dist}:lin_prior").obj


def test_the_same_name_twice_in_one_distribution_is_refused():
    reg = Registry()
    reg.add_plugin(Good(), name="good", distribution="dist-a")
    with pytest.raises(PluginError, match="dist-a.*already registered one"):
        reg.add_plugin(Good(), name="other", distribution="dist-a")
    assert reg.names("problem") == ["lin"]  # the first stays usable


def _plugin(prior=None, fwd=None):
    class P:
        @invkit.hookimpl
        def invkit_register_priors(self, register):
            register(prior or _prior("pp"))

        @invkit.hookimpl
        def invkit_register_forward_processes(self, register):
            register(fwd or ForwardProcess("ff", 2, 1, lambda x: x[:, :1]))

        @invkit.hookimpl
        def invkit_register_problems(self, register):
            register(ProblemSpec("prob", lambda: Problem("prob", "pp", "ff")))
    return P()


@pytest.mark.parametrize("prior,fwd,message", [
    (_prior("pp", dim=0), None, "dim=0"),
    (None, ForwardProcess("ff", 2, 3, lambda x: x[:, :1]), r"shape \(16, 1\); expected \(16, 3\)"),
    (None, ForwardProcess("ff", 2, 1, lambda x: x[:, :1] * float("nan")), "NaN"),
    (_prior("pp", fn=lambda n, g: torch.randn(n, 3, generator=g)), None, "expected"),
    (None, ForwardProcess("ff", 2, 1, lambda x: 1 / 0), "ZeroDivisionError"),
    ("not a prior", None, "expected invkit.Prior"),
])
def test_broken_plugins_get_clear_errors(prior, fwd, message):
    reg = Registry()
    with pytest.raises(PluginError, match=message) as info:
        reg.add_plugin(_plugin(prior, fwd), name="broken", distribution="broken-dist")
        reg.build_problem("prob")
    assert "broken" in str(info.value)


def test_misspelt_hook_gets_a_suggestion():
    class Typo:
        @invkit.hookimpl
        def invkit_register_prior(self, register):
            register(_prior("x"))

    with pytest.raises(PluginError, match="Did you mean 'invkit_register_priors'") as info:
        Registry().add_plugin(Typo(), name="typo", distribution="typo-dist")
    assert "0x" not in str(info.value)


def test_unregistered_prior_names_the_problem():
    class Dangling:
        @invkit.hookimpl
        def invkit_register_problems(self, register):
            register(ProblemSpec("dangling", lambda: Problem("dangling", "nope", "nope")))

    reg = Registry()
    reg.add_plugin(Dangling(), name="dangling-plugin")
    with pytest.raises(PluginError, match="problem 'dangling' refers to prior 'nope'"):
        reg.build_problem("dangling")


def test_reference_posterior_shape_checked_on_first_use():
    class BadRef:
        @invkit.hookimpl
        def invkit_register_problems(self, register):
            register(ProblemSpec("badref", lambda: Problem(
                "badref", _prior("bp"), ForwardProcess("bf", 2, 1, lambda x: x[:, :1]),
                reference_posterior=lambda y, n, g: torch.zeros(n, 2))))

    reg = Registry()
    reg.add_plugin(BadRef(), name="badref")
    with pytest.raises(PluginError, match=r"expected shape \(2, 3, 2\)"):
        reg.build_problem("badref")


def test_builder_cannot_rename_its_problem():
    """Neither name silently wins: the spec's is the one users type, so the builder must use
    it, and a mismatch names both."""
    class Renamed:
        @invkit.hookimpl
        def invkit_register_problems(self, register):
            register(ProblemSpec("registered", lambda: Problem(
                "other", _prior("rp"), ForwardProcess("rf", 2, 1, lambda x: x[:, :1]))))

    reg = Registry()
    reg.add_plugin(Renamed(), name="renamed")
    with pytest.raises(PluginError, match="returned a Problem named 'other'.*name='registered'"):
        reg.build_problem("registered")


def test_builder_options_are_the_resolved_ones():
    """Problem.options is filled in by the registry; a builder that sets other ones is told."""
    def build(scale: float = 1.0, record: bool = False) -> Problem:
        return Problem("opts", _prior("op"), ForwardProcess("of", 2, 1, lambda x: x[:, :1]),
                       options={"scale": 99.0} if record else {})

    class Plugin:
        @invkit.hookimpl
        def invkit_register_problems(self, register):
            register(ProblemSpec("opts", build, options={"scale": 1.0, "record": False}))

    reg = Registry()
    reg.add_plugin(Plugin(), name="opts")
    assert reg.build_problem("opts", {"scale": "2"}).options == {"scale": 2.0, "record": False}
    with pytest.raises(PluginError, match="returned options .*Leave Problem.options empty"):
        reg.build_problem("opts", {"record": True})


# -- plugins loaded through (simulated) entry points ------------------------------------------
class _EntryPoint:
    """What Registry.load_entry_points uses of an importlib.metadata.EntryPoint."""

    def __init__(self, name, target, dist="invkit-sinusoid", version="0.1.0"):
        self.name, self.target = name, target
        self.dist = types.SimpleNamespace(name=dist, version=version)

    def load(self):
        if isinstance(self.target, BaseException):
            raise self.target
        return self.target


def _load(monkeypatch, *entry_points):
    fake = types.SimpleNamespace(entry_points=lambda group: list(entry_points))
    monkeypatch.setattr(registry_module, "metadata", fake)
    reg = Registry()
    reg.load_entry_points()
    return reg


def test_load_failure_reasons_end_in_one_full_stop(monkeypatch):
    reg = _load(monkeypatch, _EntryPoint("good", Good(), dist="dist-a"),
                _EntryPoint("clash", Good(), dist="dist-b"),
                _EntryPoint("sinusoid", ModuleNotFoundError("No module named 'scipy'")))
    with pytest.raises(InvkitError) as info:
        reg.build_problem("sinusoid")
    message = str(info.value)
    assert ".." not in message
    assert "Plugin 'sinusoid' (distribution invkit-sinusoid 0.1.0) failed to load: " \
           "ModuleNotFoundError: No module named 'scipy'." in message
    assert "(or uninstall one of them)." in message  # the clash's warning, one full stop
    assert message.startswith("Unknown problem 'sinusoid'. Registered problems: dist-a:lin, "
                              "dist-b:lin.")


def _undecorated_module():
    module = types.ModuleType("invkit_sinusoid.plugin")
    module.invkit = invkit
    module.hookspecs = invkit.hookspecs
    module.invkit_register_priors = invkit.hookspecs.invkit_register_priors  # a spec: no hook

    def invkit_register_problems(register):
        register(ProblemSpec("sinusoid", lambda: Problem("sinusoid", "pp", "ff")))

    module.invkit_register_problems = invkit_register_problems
    return module


def test_undecorated_hooks_are_reported(monkeypatch):
    reg = _load(monkeypatch, _EntryPoint("sinusoid", _undecorated_module()))
    assert reg.names("problem") == [] and reg.failed == []
    [warning] = reg.warnings
    assert warning.name == "sinusoid" and warning.distribution == "invkit-sinusoid"
    assert warning.message == (
        "Plugin 'sinusoid' (distribution invkit-sinusoid 0.1.0): module invkit_sinusoid.plugin "
        "defines invkit_register_problems without the @invkit.hookimpl decorator, so invkit "
        "does not call it and registers nothing from it. Put @invkit.hookimpl (after 'import "
        "invkit') on the line above each 'def'.")
    with pytest.raises(InvkitError) as info:
        reg.build_problem("sinusoid")
    assert str(info.value).endswith(warning.message)


def test_undecorated_and_misspelt_methods_of_a_plugin_object():
    class Half(Good):
        def invkit_register_baselines(self, register):
            pass

        @staticmethod
        def invkit_register_prior(register):
            pass

    reg = Registry()
    reg.add_plugin(Half(), name="half")
    assert reg.names("problem") == ["lin"]  # the decorated hooks still count
    [warning] = reg.warnings
    assert "test_registry.test_undecorated_and_misspelt_methods_of_a_plugin_object.<locals>" \
           ".Half defines invkit_register_baselines, invkit_register_prior without" \
           in warning.message
    assert "'invkit_register_prior' is not a hook name either. Did you mean " \
           "'invkit_register_priors'" in warning.message


def test_decorated_plugins_get_no_warning():
    reg = Registry()
    reg.add_plugin(Good(), name="good")
    assert reg.warnings == [] and reg.trouble() == ""

"""Registries are typed: built-ins and plugins alike are checked at registration, one line per refusal."""

import pytest

import dst_core
from dst_core.registry import Meta, RegistrationError, Registry, loading_plugin

REGISTRIES = ["CRITERIA", "GROWTH", "SCHEDULES", "DENSITY", "MODELS", "DATASETS"]


@pytest.fixture(autouse=True)
def _restore_registries(forget_plugins):
    """What a test registers is gone after it (other tests list or build every entry)."""


def _score(w, g, mask, generator=None):
    return w.abs()


@pytest.mark.parametrize("name", REGISTRIES)
def test_every_builtin_passes_its_registrys_schema(name):
    registry = getattr(dst_core, name)
    for entry in registry:
        assert entry.plugin is None
        assert registry.meta.problems(entry.meta) == [], entry.name


def test_a_plugin_entry_records_its_module_and_the_public_decorator_registers_it():
    with loading_plugin("tests_plugin_ok"):
        dst_core.register_criterion("tests_reg_ok", needs_grad=False, paper_order="after_step",
                                    description="|w|")(_score)
    entry = dst_core.CRITERIA.get("tests_reg_ok")
    assert entry.obj is _score and entry.plugin == "tests_plugin_ok" and entry.needs_grad is False


@pytest.mark.parametrize("meta, problem", [
    ({"paper_order": "after_step", "description": "x"}, "missing metadata 'needs_grad'"),
    ({"needs_grad": "no", "paper_order": "after_step", "description": "x"},
     "metadata 'needs_grad': got 'no'; expected bool"),
    ({"needs_grad": False, "paper_order": "sometimes", "description": "x"},
     "metadata 'paper_order': got 'sometimes'; expected one of after_step, before_step"),
    ({"needs_grad": False, "paper_order": "after_step", "description": "x", "needs_gard": True},
     "unknown metadata 'needs_gard'; did you mean 'needs_grad'?"),
])
def test_missing_wrong_or_unknown_metadata_is_refused_in_one_line(meta, problem):
    with loading_plugin("my_plugin"), pytest.raises(RegistrationError) as e:
        dst_core.register_criterion("tests_reg_bad", **meta)(_score)
    assert str(e.value).startswith("plugin 'my_plugin': criterion 'tests_reg_bad': ") and problem in str(e.value)
    assert "\n" not in str(e.value) and "tests_reg_bad" not in dst_core.CRITERIA


def test_a_description_may_come_from_the_docstring_and_only_from_the_objects_own():
    from torch import nn

    def balanced(w, g, mask, generator=None):
        """|w| / mean|w|: magnitude, scaled per layer.

        More lines are not the description."""
        return w.abs() / w.abs().mean()

    class Bare(nn.Linear):  # no docstring of its own: nn.Linear's is not its description
        def __init__(self, input_shape, num_classes):
            super().__init__(input_shape[0], num_classes)

    with loading_plugin("my_plugin"):
        dst_core.register_criterion("tests_doc", needs_grad=False, paper_order="after_step")(balanced)
        for obj in (Bare, lambda input_shape, num_classes: None):
            with pytest.raises(RegistrationError, match="model 'tests_doc_model': missing metadata 'description'"):
                dst_core.register_model("tests_doc_model")(obj)
    assert dst_core.CRITERIA.get("tests_doc").description == "|w| / mean|w|: magnitude, scaled per layer."


def test_a_name_taken_by_a_builtin_or_another_plugin_is_refused():
    with loading_plugin("my_plugin"), pytest.raises(RegistrationError,
                                                    match="plugin 'my_plugin': criterion 'SNIP': the name is taken "
                                                          "by a built-in"):
        dst_core.register_criterion("SNIP", needs_grad=True, paper_order="before_step", description="x")(_score)
    with loading_plugin("first_plugin"):
        dst_core.register_model("tests_reg_model", description="x")(lambda input_shape, num_classes: None)
    with loading_plugin("second_plugin"), pytest.raises(RegistrationError,
                                                        match="the name is taken by plugin 'first_plugin'"):
        dst_core.register_model("tests-reg-model", description="y")(lambda input_shape, num_classes: None)


@pytest.mark.parametrize("register, meta, obj, expected", [
    ("register_criterion", {"needs_grad": False, "paper_order": "after_step", "description": "x"},
     lambda w, g: w, "expected score(w, g, mask, generator, **params)"),
    ("register_growth", {"needs_grad": True, "description": "x"}, lambda w, g, mask, generator, k: w,
     "expected score(w, g, mask, generator)"),
    ("register_model", {"description": "x"}, lambda input_shape: None, "expected factory(input_shape, num_classes)"),
    ("register_dataset", {"needs_root": False, "description": "x", "default_model": "mlp_cifar10",
                          "input_shape": (3, 32, 32), "num_classes": 10}, lambda: None, "expected factory(root)"),
    ("register_schedule", {"description": "x"}, lambda step: 0.1, "Schedule(initial, total_steps, eta_min)"),
    ("register_model", {"description": "x"}, "not callable", "expected a callable"),
])
def test_an_object_of_the_wrong_signature_is_refused(register, meta, obj, expected):
    with loading_plugin("my_plugin"), pytest.raises(RegistrationError) as e:
        getattr(dst_core, register)("tests_reg_sig", **meta)(obj)
    assert str(e.value).startswith("plugin 'my_plugin': ") and expected in str(e.value)


def test_a_dataset_shape_must_be_a_tuple_of_positive_ints():
    with loading_plugin("my_plugin"), pytest.raises(RegistrationError, match="metadata 'input_shape'"):
        dst_core.register_dataset("tests_reg_data", needs_root=False, description="x", default_model="mlp_cifar10",
                                  input_shape=[3, 32, 32], num_classes=10)(lambda root: None)


def test_a_registry_declares_its_schema():
    reg = Registry("thing", Meta(required={"size": int}, optional={"note": str}), arity=1, signature="f(x)")
    reg.register("a", size=1)(lambda x: x)
    assert reg.get("a").plugin == "tests.dst_core.test_registry"  # registered from outside dst_core
    with pytest.raises(RegistrationError, match="thing 'b': metadata 'size': got True; expected int"):
        reg.register("b", size=True)(lambda x: x)

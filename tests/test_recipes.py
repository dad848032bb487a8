"""README's recipes for attach under PyTorch Lightning and the HuggingFace Trainer, each run against
the plain loop: weights and masks bit for bit the same (examples/recipes/frameworks.py)."""

import sys
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parents[1] / "examples" / "recipes"


@pytest.mark.parametrize("recipe", ["lightning_automatic", "lightning_manual", "huggingface_trainer"])
def test_a_framework_recipe_trains_as_the_plain_loop_does(recipe, monkeypatch, tmp_path):
    pytest.importorskip("lightning" if recipe.startswith("lightning") else "transformers")
    monkeypatch.syspath_prepend(str(RECIPES))
    monkeypatch.chdir(tmp_path)  # Lightning and the Trainer write nothing, but a stray log would land here
    import frameworks

    assert frameworks.check(getattr(frameworks, recipe)).endswith("weights and masks equal to the plain loop's")
    sys.modules.pop("frameworks", None)

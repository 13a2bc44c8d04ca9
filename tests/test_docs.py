from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_configuration_reference_is_generated_from_the_settings_module() -> None:
    spec = importlib.util.spec_from_file_location("gen", ROOT / "docs" / "_gen_configuration.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.render()
    actual = (ROOT / "docs" / "configuration.md").read_text()
    assert actual == expected, "docs/configuration.md is stale: run python docs/_gen_configuration.py"


def test_configuration_reference_lists_every_variable() -> None:
    from obskit import environment_variables

    text = (ROOT / "docs" / "configuration.md").read_text()
    for name in environment_variables.ALL:
        assert f"`{name}`" in text


def test_readme_opens_with_the_demo_and_test_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert "pip install -e . && obskit demo" in first_block
    assert "python -m pytest" in first_block
    assert "python -m pytest -n auto" in (ROOT / ".ci" / "run").read_text()

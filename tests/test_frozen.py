"""obskit._core.frozen: frozen dataclasses with written-once methods behave as generated ones."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest

from obskit._core import state as _state
from obskit._core.frozen import frozen_dataclass


@frozen_dataclass(eq=False)
class _ByIdentity:
    name: str
    items: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, eq=False)
class _Generated:
    name: str
    items: list[int] = dataclasses.field(default_factory=list)


def test_state_methods_are_not_generated_at_import() -> None:
    import obskit._core.frozen as module

    for name in ("__init__", "__repr__", "__setattr__", "__delattr__"):
        assert getattr(_state.State, name).__code__.co_filename == module.__file__, name


def test_without_eq_instances_compare_and_hash_by_identity_as_generated() -> None:
    ours, theirs = _ByIdentity("a"), _Generated("a")
    assert repr(ours) == repr(theirs).replace("_Generated", "_ByIdentity")
    same = ours
    assert ours == same
    assert ours != _ByIdentity("a")
    assert hash(ours) == object.__hash__(ours)
    with pytest.raises(TypeError, match="missing required argument: 'name'"):
        _ByIdentity()  # type: ignore[call-arg]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ours.name = "b"  # type: ignore[misc]
    assert dataclasses.replace(ours, name="b").items == []
    assert dataclasses.replace(_state.STATE) != _state.STATE


@frozen_dataclass()
class _Annotated:
    kept: ClassVar[int] = 3
    name: str
    size: int | None = None


@frozen_dataclass()
class _Plain:
    name: str
    size: int | None = None


def test_fields_keep_their_annotations_and_class_variables_stay_out() -> None:
    for cls in (_Annotated, _Plain):
        fields = dataclasses.fields(cls)
        assert [(f.name, f.type) for f in fields] == [("name", "str"), ("size", "int | None")]
        assert cls.__annotations__["name"] == "str"
        assert cls("a", 2) == cls(name="a", size=2) != cls("a")
    assert dataclasses.replace(_Plain("a"), size=4) == _Plain("a", 4)
    assert _Annotated.kept == 3
    assert "kept" not in {f.name for f in dataclasses.fields(_Annotated)}

from __future__ import annotations

import pytest

from dlcamp.errors import UnknownNameError, UsageError
from dlcamp.registry import Registry


def test_registry_registers_lists_and_suggests():
    reg = Registry("widget")

    @reg.register("resnet50")
    def resnet50(*, depth: int = 50):
        """A widget.

        More text."""
        return depth

    assert reg.describe() == {"resnet50": "A widget."}
    assert reg.build("resnet50", depth=3) == 3
    with pytest.raises(UnknownNameError, match="did you mean resnet50"):
        reg.builder("resnet05")
    with pytest.raises(UsageError, match="no option 'dept'.*depth"):
        reg.build("resnet50", dept=3)


def test_duplicate_registration_raises():
    reg = Registry("widget")
    reg.register("a")(lambda: 1)
    with pytest.raises(ValueError, match="twice"):
        reg.register("a")(lambda: 2)

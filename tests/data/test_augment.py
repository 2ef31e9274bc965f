"""Augmentation specs -> torchvision.transforms.v2 transforms, with errors that speak."""

from __future__ import annotations

import pickle

import pytest
import torch
from torchvision.transforms import v2

from dlcamp.data.augment import InputTransform, available_transforms, build_augment, input_transform
from dlcamp.errors import UsageError


def test_no_specs_means_no_transform():
    assert build_augment(None) is None
    assert build_augment([]) is None


def test_unknown_name_is_a_usage_error_with_a_suggestion():
    with pytest.raises(UsageError) as info:
        build_augment([{"name": "RandomAfine", "degrees": 10}])
    message = str(info.value)
    assert "augment[0]" in message and "'RandomAfine'" in message
    assert "did you mean RandomAffine" in message
    assert "\n" not in message


def test_only_v2_transform_classes_may_be_named():
    names = available_transforms()
    assert "RandomAffine" in names and "Transform" not in names
    assert "InterpolationMode" not in names and "functional" not in names
    with pytest.raises(UsageError, match="unknown transform 'InterpolationMode'"):
        build_augment([{"name": "InterpolationMode"}])


def test_misspelled_argument_is_a_usage_error_naming_the_right_one():
    with pytest.raises(UsageError, match="did you mean degrees"):
        build_augment([{"name": "RandomAffine", "degree": 10}])


def test_value_torchvision_refuses_is_a_one_line_usage_error():
    with pytest.raises(UsageError) as info:
        build_augment([{"name": "RandomHorizontalFlip"}, {"name": "RandomAffine", "degrees": 10, "translate": [2.0]}])
    message = str(info.value)
    assert message.startswith("augment[1]: RandomAffine(") and "\n" not in message


def test_missing_required_argument_is_a_usage_error():
    with pytest.raises(UsageError, match="RandomAffine"):
        build_augment([{"name": "RandomAffine"}])


@pytest.mark.parametrize("spec", [{"degrees": 10}, "RandomAffine", {"name": 3}])
def test_spec_without_a_name_is_a_usage_error(spec):
    with pytest.raises(UsageError, match="augment\\[0\\]"):
        build_augment([spec])


def test_random_affine_spec_works_on_a_batch():
    augment = build_augment([{"name": "RandomAffine", "degrees": 30, "translate": [0.2, 0.2]}])
    batch = torch.rand(16, 1, 8, 8)
    torch.manual_seed(0)
    first = augment(batch)
    torch.manual_seed(0)
    second = augment(batch)
    assert first.shape == batch.shape and first.dtype == batch.dtype
    assert torch.equal(first, second)  # the randomness is torch's, so seeding reproduces it
    assert not torch.equal(first, batch)


def test_several_specs_compose_in_order():
    augment = build_augment([{"name": "RandomHorizontalFlip", "p": 1.0}, {"name": "RandomVerticalFlip", "p": 1.0}])
    image = torch.rand(3, 5, 7)
    assert torch.equal(augment(image), image.flip(-1).flip(-2))


def test_containers_take_nested_specs():
    augment = build_augment(
        [{"name": "RandomApply", "p": 1.0, "transforms": [{"name": "RandomHorizontalFlip", "p": 1.0}]}]
    )
    image = torch.rand(1, 4, 4)
    assert torch.equal(augment(image), image.flip(-1))
    with pytest.raises(UsageError, match=r"augment\[0\]\.transforms\[0\]"):
        build_augment([{"name": "RandomApply", "transforms": [{"name": "Flip"}]}])


def test_input_transform_applies_steps_to_x_only_and_pickles():
    transform = input_transform(build_augment([{"name": "RandomHorizontalFlip", "p": 1.0}]), None)
    assert isinstance(transform, InputTransform) and len(transform.steps) == 1
    x, y = transform(torch.arange(4.0).view(1, 1, 4), 7)
    assert x.flatten().tolist() == [3.0, 2.0, 1.0, 0.0] and y == 7
    assert isinstance(pickle.loads(pickle.dumps(transform)).steps[0], v2.RandomHorizontalFlip)
    assert input_transform(None, None) is None

"""FCN-32s/16s/8s: convolutionalization, crops from the layers' geometry, any input size, overfitting one batch."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F

from dlcamp.errors import UsageError
from dlcamp.models import get_model
from dlcamp.models.classification.vgg import STAGES, VGG, make_features
from dlcamp.models.segmentation.fcn import FCN, Grid, convolutionalize

SMALL_VGG = {"width_mult": 1 / 16, "head_width": 64}  # the paper's trunk, 16x narrower: same geometry
TINY = {"backbone": "tiny", "head_width": 32, "backbone_options": {"widths": [8, 16, 32, 32]}}


def test_fc6_as_a_7x7_convolution_equals_the_dense_layer_on_224_and_slides_on_larger_inputs():
    torch.manual_seed(0)
    vgg = get_model("vgg16").double().eval()
    x = torch.rand(1, 3, 224, 224, dtype=torch.float64)
    with torch.no_grad():
        features = vgg.forward_features(x)  # (1, 512, 7, 7)
        assert features.shape == (1, 512, 7, 7)
        convs = convolutionalize(vgg.classifier, 7).double().eval()
        fc6_dense = vgg.classifier[0](features.flatten(1))  # (1, 4096)
        fc6_conv = convs[0](features)  # (1, 4096, 1, 1)
        torch.testing.assert_close(fc6_conv[:, :, 0, 0], fc6_dense, rtol=1e-10, atol=1e-10)
        # the whole head, fc8 included, is the classifier's output as a 1x1 map
        torch.testing.assert_close(convs(features)[:, :, 0, 0], vgg(x), rtol=1e-10, atol=1e-10)
        # a larger map: every cell is the dense layer applied to its own 7x7 window
        big = torch.rand(1, 512, 10, 12, dtype=torch.float64)
        heat = convs[0](big)
        assert heat.shape == (1, 4096, 4, 6)
        for i in range(4):
            for j in range(6):
                window = big[:, :, i : i + 7, j : j + 7].flatten(1)
                torch.testing.assert_close(heat[:, :, i, j], vgg.classifier[0](window), rtol=1e-10, atol=1e-10)


def test_the_crops_computed_from_the_grids_are_the_papers_caffe_offsets():
    # voc-fcn32s: upscore cropped by 19; fcn16s: score_pool4 by 5, upscore16 by 27;
    # fcn8s: score_pool4 by 5, score_pool3 by 9, upscore8 by 31 (the released prototxts).
    expected = {"fcn32s": ([], 19), "fcn16s": ([5], 27), "fcn8s": ([5, 9], 31)}
    for name, (skips, final) in expected.items():
        model = get_model(name, num_classes=21, **SMALL_VGG)
        assert [-int(up.start) for up in model.up2] == skips, name  # negative: the skip is cropped
        assert model.up_final.start == final, name
        assert model.up_final.conv.kernel_size == (64 // 2 ** len(skips),) * 2  # 2f: Caffe's kernels


def test_grid_arithmetic_of_a_conv_and_a_transposed_conv():
    g = Grid().conv(3, padding=100)  # conv1_1 of the paper
    assert g == Grid(1, -99)
    pooled = g.conv(2, 2)
    assert pooled == Grid(2, -98.5)
    # a stride-2 transposed conv with a 4-wide kernel undoes the pool's stride, half a cell earlier
    assert pooled.up(4, 2) == Grid(1, -98.5 - 1.5)


@pytest.mark.parametrize("name", ["fcn32s", "fcn16s", "fcn8s"])
@pytest.mark.parametrize("kwargs", [SMALL_VGG, TINY], ids=["paper-vgg16", "tiny"])
def test_any_input_size_gives_a_map_of_that_size(name, kwargs):
    torch.manual_seed(0)
    model = get_model(name, num_classes=4, **kwargs).eval()
    for size in [(1, 1), (2, 3), (31, 32), (64, 97), (128, 128)]:
        with torch.no_grad():
            out = model(torch.rand(1, 3, *size))
        assert out.shape == (1, 4, *size), (name, size)


def test_scores_start_at_zero_and_only_the_last_upsampling_is_fixed():
    model = get_model("fcn8s", num_classes=5, **TINY).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 40, 40)).abs().max() == 0  # zero-initialised score layers: chance
    assert all(up.conv.weight.requires_grad for up in model.up2)
    assert not model.up_final.conv.weight.requires_grad
    assert model.up_final.conv.groups == 5  # fixed bilinear: one kernel per class
    with pytest.raises(UsageError, match="odd"):
        get_model("fcn8s", num_classes=5, **{**TINY, "head_kernel": 2})
    with pytest.raises(UsageError, match="paper"):
        get_model("fcn8s", num_classes=5, head_kernel=3, **SMALL_VGG)


@pytest.mark.parametrize("skips", [0, 1, 2])
@pytest.mark.parametrize("trunk", ["paper-vgg16", "tiny"])
def test_constant_scores_come_back_constant_at_every_pixel_borders_included(skips, trunk):
    # The upsamplings interpolate, and nothing fades at the borders: with the score layers
    # giving a constant, every output pixel is that constant, at any input size. (The paper's
    # own layers, edge=0, fade over FCN-32s's first pixels; edge=1 repeats the border cells.)
    if trunk == "tiny":
        model = get_model(["fcn32s", "fcn16s", "fcn8s"][skips], num_classes=3, **TINY).eval()
    else:
        features, c = make_features(STAGES["D"], width_mult=1 / 16)
        model = FCN.from_vgg(VGG(features, c, hidden=64), 3, skips, edge=1).eval()
    with torch.no_grad():
        model.score_fr.bias.copy_(torch.tensor([1.0, -2.0, 0.5]))
        for size in [(32, 32), (45, 70), (128, 128)]:
            out = model(torch.rand(1, 3, *size))
            torch.testing.assert_close(out, torch.tensor([1.0, -2.0, 0.5]).view(1, 3, 1, 1).expand_as(out))


def test_a_vgg_backbone_that_pools_by_flooring_takes_any_size_too():
    model = get_model("fcn8s", num_classes=2, backbone="vgg11", head_width=16, backbone_options={}).eval()
    for size in [(103, 103), (108, 125), (40, 33)]:
        with torch.no_grad():
            assert model(torch.rand(1, 3, *size)).shape == (1, 2, *size)


def test_the_fixed_upsampling_is_a_buffer_that_no_phase_can_unfreeze():
    model = get_model("fcn8s", num_classes=4, **TINY)
    model.requires_grad_(True)  # what a training phase does to the groups it trains
    names = {n for n, _ in model.named_parameters()}
    assert "up_final.conv.weight" not in names and "up_final.conv.weight" in model.state_dict()
    assert "up2.0.conv.weight" in names


def shapes_batch(n: int = 4, size: int = 96):
    from dlcamp.data import get_dataset

    dm = get_dataset("shapes_segmentation", image_size=size, max_size=40, train_size=n, val_size=1, test_size=1)
    dm.setup()
    items = [dm.splits["train"][i] for i in range(n)]
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


@pytest.mark.parametrize(
    "name,kwargs",
    [("fcn32s", TINY), ("fcn16s", TINY), ("fcn8s", TINY), ("fcn8s", SMALL_VGG)],
    ids=["fcn32s-tiny", "fcn16s-tiny", "fcn8s-tiny", "fcn8s-paper-vgg16"],
)
def test_each_fcn_overfits_one_batch(name, kwargs):
    torch.manual_seed(0)
    x, y = shapes_batch()
    model = get_model(name, num_classes=9, dropout=0.0, **kwargs)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    first = None
    for _ in range(150):
        loss = F.cross_entropy(model(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    # FCN-32s's one 32x upsampling of a 3x3 map is the limit here (loss ~0.37, pixel accuracy ~0.89
    # where FCN-8s reaches ~0.06 and ~0.98): the bound is set so that the coarsest net passes too
    assert loss.item() < 0.2 * first and acc > 0.85, (first, loss.item(), acc)


def test_from_vgg_carries_a_classification_vgg16s_weights_over(tmp_path):
    torch.manual_seed(0)
    features, c = make_features(STAGES["D"], width_mult=1 / 16)
    vgg = VGG(features, c, num_classes=1000, hidden=64)
    path = tmp_path / "vgg16.pt"
    torch.save(vgg.state_dict(), path)
    model = get_model("fcn8s", num_classes=3, vgg_weights=str(path), **SMALL_VGG)
    trunk = model.trunk
    for a, b in zip(trunk.features.state_dict().values(), vgg.features.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(trunk.fc[0].weight.flatten(1), vgg.classifier[0].weight)  # fc6: 7x7 conv = dense
    assert torch.equal(trunk.fc[3].weight.flatten(1), vgg.classifier[3].weight)  # fc7: 1x1 conv = dense
    assert trunk.features[0].padding == (100, 100) and vgg.features[0].padding == (1, 1)  # the original untouched


class _Boom:
    """Unpickling this would create the file ``target``: a stand-in for code in a weights file."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_vgg_weights_that_are_not_tensors_are_refused_without_running_them(tmp_path):
    path, mark = tmp_path / "evil.pt", tmp_path / "ran"
    path.write_bytes(pickle.dumps({"features.0.weight": _Boom(str(mark))}))
    with pytest.raises(UsageError, match="not a file of tensors"):
        get_model("fcn8s", num_classes=3, vgg_weights=str(path), **SMALL_VGG)
    assert not mark.exists()
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(UsageError, match="not a VGG16 state dict"):
        get_model("fcn8s", num_classes=3, vgg_weights=str(other), **SMALL_VGG)
    with pytest.raises(UsageError, match="vgg16"):
        get_model("fcn8s", num_classes=3, vgg_weights=str(other), backbone="tiny")


def test_fcn_on_a_backbone_needs_strides_8_16_32():
    with pytest.raises(UsageError, match="skips"):
        FCN(get_model("fcn8s", num_classes=3, **TINY).trunk, 3, skips=3)


def test_backbone_cell_offsets_agree_with_the_grid_walked_through_their_layers():
    # VGG's closed form ((s - 1) / 2, the extras keeping the last map's) against the layers themselves
    from dlcamp.models.backbones import get_backbone
    from dlcamp.models.segmentation.fcn import grid_after

    vgg = get_backbone("vgg11", first_stride=8, num_levels=4)  # strides 8, 16 from the convs; 32, 64 extras
    walked, grid = [], Grid()
    for i, layer in enumerate(vgg.features):
        grid = grid_after(layer, grid)
        if i in vgg._taps:
            walked.append(grid)
    for extra in vgg.extras:
        grid = grid_after(extra, grid)
        walked.append(grid)
    assert [g.stride for g in walked] == vgg.strides
    assert [g.offset for g in walked] == vgg.cell_offsets()
    tiny = get_backbone("tiny", first_stride=8, num_levels=3)
    grid = grid_after(tiny.stem, Grid())
    offsets = []
    for i, stage in enumerate(tiny.stages):
        grid = grid_after(stage, grid)
        if i >= tiny.first:
            offsets.append(grid.offset)
    assert offsets == tiny.cell_offsets() == [0.0, 0.0, 0.0]

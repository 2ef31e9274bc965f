"""`dlcamp data export shapes`: COCO folders per split, knobs by --set, refusals as one line."""

from __future__ import annotations

import json

TINY = ["--set", "image_size=32", "--set", "min_size=6", "--set", "max_size=16"]


def test_export_writes_every_split_and_refuses_to_overwrite(cli, usage_error, tmp_path):
    out = tmp_path / "coco"
    proc = cli("data", "export", "shapes", "-o", str(out), "-n", "2", *TINY)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["train", "val", "test"]
    for split in ("train", "val", "test"):
        coco = json.loads((out / split / "annotations.json").read_text())
        assert [im["file_name"] for im in coco["images"]] == ["000000.png", "000001.png"]
        assert coco["images"][0]["width"] == 32
        for name in (
            "images/000001.png",
            "semantic/000001.png",
            "panoptic/000001.png",
            "captions.json",
            "panoptic.json",
        ):
            assert (out / split / name).is_file(), name

    proc = cli("data", "export", "shapes", "-o", str(out), "--split", "val", "-n", "1", *TINY)
    usage_error(proc, "val", "not empty")


def test_only_generated_datasets_export(cli, usage_error, tmp_path):
    usage_error(cli("data", "export", "digits", "-o", str(tmp_path / "x")), "digits", "shapes")
    assert not (tmp_path / "x").exists()

"""`dlcamp tour --quick`: every family's section in one self-contained report."""

from __future__ import annotations


def test_quick_tour_writes_one_report_with_every_section(cli, tmp_path):
    out = tmp_path / "tour"
    proc = cli("tour", "--quick", "-o", str(out), timeout=600)
    assert proc.returncode == 0, proc.stderr
    html = (out / "report.html").read_text()
    assert html.index("MLP, optimizers and regularizers") < html.index("Modern CNNs")  # curriculum order
    for family in ("alexnet_small", "vgg11_small", "googlenet_small", "resnet20", "densenet_bc_100_k12"):
        assert family in html, family
    assert "conv3x3x2 sees 5x5 like conv5x5" in html
    assert html.index("Modern CNNs") < html.index("Likelihood models")
    for recipe in ("bernoulli-digits", "nade-digits", "pixelcnn-digits", "pixelrnn-digits", "vae-digits", "cvae-digits"):
        assert (out / recipe / "figures" / "samples.png").exists(), recipe
        assert f"samples: {recipe}" in html
    assert "test NLL (nats)" in html
    assert html.index("Likelihood models") < html.index("Sequence models")
    for recipe, figure in (("gru-attention-dates", "cross_attention.png"), ("gru-dates", "examples.png"),
                           ("lstm-reber", "accuracy_by_length.png"), ("transformer-stdlib", "samples.png"),
                           ("transformer-stdlib", "self_attention.png")):
        assert (out / recipe / "figures" / figure).exists(), (recipe, figure)
        assert f"{recipe}: {figure[:-4]}" in html
    assert html.index("Sequence models") < html.index("Object detection")
    for recipe in ("ssd-shapes", "fasterrcnn-shapes"):
        for figure in ("detections", "anchors", "pr_curves"):
            assert f"{recipe}: {figure}" in html, (recipe, figure)
    for optimizer in ("sgd", "adagrad", "adadelta", "rmsprop", "adam ", "adamw"):
        assert optimizer in html, optimizer
    assert html.count("data:image/png;base64,") >= 4  # curves, confusion, predictions, optimizer comparison
    assert (out / "mlp-digits" / "summary.json").exists()
    assert (out / "resnet20-digits32" / "summary.json").exists()

    # a second tour replaces the first; a directory that is not a tour is refused
    assert cli("tour", "--quick", "-o", str(out), "--sections", "mlp", timeout=600).returncode == 0
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    proc = cli("tour", "--quick", "-o", str(other))
    assert proc.returncode == 2 and "not a tour directory" in proc.stderr
    assert (other / "notes.txt").exists()

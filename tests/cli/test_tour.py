"""`dlcamp tour`: every family's section, found where it lives, in one report with a table of contents."""

from __future__ import annotations

import io
import json
import os
import textwrap

from dlcamp.tour import load_sections
from dlcamp.tour.progress import TourProgress

BUILT_IN = [
    "mlp",
    "cnn",
    "generative",
    "adversarial",
    "sequence",
    "detection",
    "segmentation",
]  # the curriculum's order


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
    for recipe in (
        "bernoulli-digits",
        "nade-digits",
        "pixelcnn-digits",
        "pixelrnn-digits",
        "vae-digits",
        "cvae-digits",
    ):
        assert (out / recipe / "figures" / "samples.png").exists(), recipe
        assert f"samples: {recipe}" in html
    assert "test NLL (nats)" in html
    assert html.index("Likelihood models") < html.index("Sequence models")
    for recipe, figure in (
        ("gru-attention-dates", "cross_attention.png"),
        ("gru-dates", "examples.png"),
        ("lstm-reber", "accuracy_by_length.png"),
        ("transformer-stdlib", "samples.png"),
        ("transformer-stdlib", "self_attention.png"),
    ):
        assert (out / recipe / "figures" / figure).exists(), (recipe, figure)
        assert f"{recipe}: {figure[:-4]}" in html
    assert html.index("Sequence models") < html.index("Object detection")
    for recipe in ("ssd-shapes", "fasterrcnn-shapes"):
        for figure in ("detections", "anchors", "pr_curves"):
            assert f"{recipe}: {figure}" in html, (recipe, figure)
    assert html.index("Object detection") < html.index("Semantic segmentation")
    for figure in ("segmentations", "class_iou", "confusion_matrix"):
        assert f"fcn8s-shapes: {figure.replace('_', ' ')}" in html, figure
    assert "up_final.conv" in html and "ConvTranspose2d" in html  # how the map grows back
    for optimizer in ("sgd", "adagrad", "adadelta", "rmsprop", "adam ", "adamw"):
        assert optimizer in html, optimizer
    assert html.count("data:image/png;base64,") >= 4  # curves, confusion, predictions, optimizer comparison
    assert (out / "mlp-digits" / "summary.json").exists()
    assert (out / "resnet20-digits32" / "summary.json").exists()

    # a table of contents links every section, in order, each with its time against its budget
    toc = html[html.index("<nav") : html.index("</nav>")]
    links = [toc.index(f'href="#{name}"') for name in BUILT_IN]
    assert links == sorted(links)
    for name in BUILT_IN:
        assert f'<h2 id="{name}">' in html, name
    assert toc.count("<li>") == toc.count(" s budget") == len(BUILT_IN)
    timings = json.loads((out / "tour.json").read_text())
    assert timings["quick"] is True and [s["name"] for s in timings["sections"]] == BUILT_IN
    assert all(s["seconds"] > 0 and s["budget_s"] > 0 for s in timings["sections"])
    assert (
        f"tour {len(BUILT_IN)}/{len(BUILT_IN)}: {BUILT_IN[-1]} took" in proc.stdout
    )  # plain progress lines: not a terminal

    # a second tour replaces the first (--only one section); a directory that is not a tour is refused
    proc = cli("tour", "--quick", "-o", str(out), "--only", "mlp", timeout=600)
    assert proc.returncode == 0, proc.stderr
    html = (out / "report.html").read_text()
    assert "MLP, optimizers" in html and "Modern CNNs" not in html and "<nav" not in html  # one section: no contents
    assert not (out / "resnet20-digits32").exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    proc = cli("tour", "--quick", "-o", str(other))
    assert proc.returncode == 2 and "not a tour directory" in proc.stderr
    assert (other / "notes.txt").exists()


def test_sections_are_discovered_in_curriculum_order_with_budgets():
    sections = {s.name: s for s in load_sections()}
    assert [name for name in sections if name in BUILT_IN] == BUILT_IN
    for s in sections.values():
        assert 0 < s.quick_budget_s <= s.budget_s, s.name
        assert s.title, s.name
    # the budgets the tour is held to on a quiet 2-core machine: 6 minutes, 90 s quick
    assert sum(sections[n].budget_s for n in BUILT_IN) <= 360
    assert sum(sections[n].quick_budget_s for n in BUILT_IN) <= 90


PLUGIN = '''
"""A family kept outside dlcamp, with its own tour section."""
from dlcamp.tour import Tour, tour_section


@tour_section("toy", title="Toy family", order=25, budget_s=5, quick_budget_s=2)
def toy_section(tour: Tour) -> str:
    """A toy family's section, discovered from an installed plug-in."""
    return f"<p>toy section ran (quick: {tour.quick})</p>"
'''


def write_plugin(root) -> dict[str, str]:
    """An installed plug-in as `pip install` leaves one: a module and a dist-info naming it under dlcamp.plugins."""
    (root / "toy_family.py").write_text(textwrap.dedent(PLUGIN))
    info = root / "toy_family-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-family\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dlcamp.plugins]\ntoy = toy_family\n")
    return {"PYTHONPATH": os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}


def test_a_plugin_registers_a_section_that_the_tour_runs_alone(cli, tmp_path):
    env = write_plugin(tmp_path)
    proc = cli("list", "sections", env=env)
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.strip().splitlines()]
    assert names[:3] == ["mlp", "cnn", "toy"]  # its order, 25, puts it between the CNNs and what follows
    assert "discovered from an installed plug-in" in proc.stdout

    out = tmp_path / "tour"
    proc = cli("tour", "--quick", "--only", "toy", "-o", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    html = (out / "report.html").read_text()
    assert '<h2 id="toy">Toy family</h2>' in html and "toy section ran (quick: True)" in html
    assert "Modern CNNs" not in html
    timings = json.loads((out / "tour.json").read_text())
    assert [(s["name"], s["budget_s"]) for s in timings["sections"]] == [("toy", 2)]
    assert "tour 1/1: toy" in proc.stdout


def test_only_takes_comma_separated_names_and_refuses_unknown_ones(cli, usage_error, tmp_path):
    usage_error(cli("tour", "--only", "mlp,cnnn", "-o", str(tmp_path / "t")), "cnnn", "did you mean cnn")
    usage_error(cli("tour", "--only", ",", "-o", str(tmp_path / "t")), "--only")
    assert not (tmp_path / "t").exists()


def test_progress_is_plain_lines_off_a_terminal():
    stream = io.StringIO()
    with TourProgress(2, stream=stream) as progress:  # StringIO is not a terminal
        progress.section_start("mlp", 20)
        progress.recipe_start("mlp-digits")
        progress.step(10, 50)
        progress.recipe_end("mlp-digits", {"metrics": {"test/acc": 0.9, "val/acc": 0.8}, "train_seconds": 1.5})
        progress.section_end(30.0)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "tour 1/2: mlp (budget 20 s)",
        "  mlp-digits: test/acc 0.9000 (1.5 s)",
        "tour 1/2: mlp took 30 s, OVER its 20 s budget",
    ]
    assert "\x1b" not in stream.getvalue()


def test_live_line_names_the_section_the_recipe_and_the_step():
    progress = TourProgress(5, stream=io.StringIO(), live=True)
    progress.section_start("cnn", 15)
    progress.recipe_start("resnet20-digits32")
    progress.step(120, 282)
    line = progress.render().plain
    assert line.startswith("tour 1/5") and "cnn" in line and "/ 15 s" in line
    assert "resnet20-digits32" in line and "step 120/282" in line
    progress.phase("validating")
    assert "validating" in progress.render().plain

"""``dlcamp params`` as a user runs it: subprocess, exit status, output."""

from __future__ import annotations

import json


def test_compare_prints_both_configurations_and_a_conclusion(cli):
    proc = cli("params", "--compare", "conv5x5", "conv3x3x2")
    assert proc.returncode == 0, proc.stderr
    assert "conv5x5" in proc.stdout and "conv3x3x2" in proc.stdout
    assert "conv3x3x2 sees 5x5 like conv5x5 with 0.72x the parameters and 0.72x the MACs" in proc.stdout


def test_compare_json(cli):
    proc = cli("params", "--compare", "plain3x3x2", "bottleneck", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert [row["name"] for row in result["rows"]] == ["plain3x3x2", "bottleneck"]
    assert result["rows"][1]["receptive_field"] == 3


def test_compare_unknown_name_is_one_line_and_exit_2(cli):
    proc = cli("params", "--compare", "conv5x5", "nonsense")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "nonsense" in lines[0] and "conv3x3x2" in lines[0]


def test_params_without_model_or_compare_is_a_usage_error(cli):
    proc = cli("params")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_params_resnet50_json_totals(cli):
    proc = cli("params", "resnet50", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["total_params"] == 25_557_032
    assert (report["receptive_field"], report["jump"], report["output"]) == (427, 32, [1000])

"""pyro-frmdn collect: its options, its errors, and a real CarRacing rollout when installed."""

import pytest

from pyro_frmdn.cli import _parser, collect, main


def test_collect_command_parses_and_reports_errors(tmp_path, capsys):
    parser = _parser()
    args = parser.parse_args(["collect", "--out", str(tmp_path), "--episodes", "0"])
    assert args.func is collect.main and args.size == 64 and args.skip_frames == 50
    assert collect.main(args) == 0
    bad = parser.parse_args(["collect", "--out", str(tmp_path), "--steps", "0"])
    assert collect.main(bad) == 2
    assert "steps must be an integer >= 1, got 0" in capsys.readouterr().err


def test_collect_is_a_command_of_the_cli(tmp_path, capsys):
    pytest.importorskip("gymnasium", reason="the CarRacing collector needs gymnasium[box2d]")
    pytest.importorskip("Box2D", reason="CarRacing needs Box2D (gymnasium[box2d])")
    out = tmp_path / "rollouts"
    argv = ["collect", "--out", str(out), "--episodes", "1", "--steps", "4", "--skip-frames", "1"]
    assert main([*argv, "--no-progress"]) == 0
    assert sorted(p.name for p in out.glob("*.npz")) == ["episode_00000.npz"]
    assert main([*argv[:3], "--steps", "0", "--no-progress"]) == 2
    assert "collect: error: steps must be an integer >= 1" in capsys.readouterr().err

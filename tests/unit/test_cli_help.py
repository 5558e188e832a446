"""Help for the small mistakes (issue 25, finding 9): a mistyped flag gets the command's usage
and the closest real flag, ``--max-memory`` takes the usual ways to write a size, and
``sweep --help`` lists every flag it accepts. In-process: argparse only, no sweep."""

from __future__ import annotations

import argparse

import pytest

from exportwatch.cli.main import build_parser, parse_arguments
from exportwatch.cli.options import memory_mb, unrecognized_arguments


@pytest.mark.parametrize(
    ("text", "mib"),
    [
        ("4096", 4096),
        ("4096M", 4096),
        ("4096MB", 4096),
        ("4096mb", 4096),
        ("4G", 4096),
        ("4GB", 4096),
        ("4GiB", 4096),
        ("4gib", 4096),
        ("1.5G", 1536),
        ("512MiB", 512),
        ("2048K", 2),
        ("1T", 1024 * 1024),
    ],
)
def test_memory_mb__reads_binary_units_with_or_without_b_or_ib(text, mib):
    assert memory_mb(text) == mib


@pytest.mark.parametrize("text", ["lots", "4 G B", "G", "4X", "-1G", "0", "4096B", "1e3", ""])
def test_memory_mb__refuses_what_is_not_a_size_with_an_example(text):
    with pytest.raises(argparse.ArgumentTypeError, match=r"4GB"):
        memory_mb(text)


def test_unrecognized_arguments__names_the_closest_flag_of_the_command():
    message = unrecognized_arguments(["--targets", "export"], known=["-h", "--target", "--model", "-q"])
    assert message == "unrecognized arguments: --targets export; did you mean --target?"


def test_unrecognized_arguments__names_one_flag_per_typo_and_reads_the_equals_form():
    message = unrecognized_arguments(["--targets=onnx", "--modle", "a"], known=["--target", "--model"])
    assert message.endswith("did you mean --target (for --targets), --model (for --modle)?")


def test_unrecognized_arguments__suggests_nothing_for_a_stray_value_or_a_far_flag():
    assert unrecognized_arguments(["extra.json"], known=["--format"]) == "unrecognized arguments: extra.json"
    assert "did you mean" not in unrecognized_arguments(["--zzz"], known=["--format"])


@pytest.mark.parametrize(
    ("argv", "command", "suggested"),
    [
        (["sweep", "m.yml", "--targets", "export"], "sweep", "--target"),
        (["compare", "m.yml", "--base", "main", "--cache-directory", "c"], "compare", "--cache-dir"),
        (["diff", "a.json", "b.json", "--formats", "text"], "diff", "--format"),
        (["merge", "a.json", "-o", "r.json", "--quite"], "merge", "--quiet"),
        (["report", "r.json", "--bases", "b.json"], "report", "--base"),
        (["matrix", "r.json", "--tittle", "x"], "matrix", "--title"),
    ],
)
def test_cli__a_mistyped_flag_gets_the_commands_usage_and_the_closest_flag(argv, command, suggested, capsys):
    with pytest.raises(SystemExit) as exited:
        parse_arguments(build_parser(), argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: exportwatch {command} ")
    assert f"did you mean {suggested}?" in err


def test_cli__parses_as_before_when_every_flag_is_known():
    args = parse_arguments(build_parser(), ["sweep", "m.yml", "--target", "export", "-v"])
    assert args.targets == ["export"] and args.verbose is True


def test_sweep_help__lists_verbose(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sweep", "--help"])
    out = capsys.readouterr().out
    assert "-v, --verbose" in out


def test_sweep_help__says_quiet_also_hides_the_final_table(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sweep", "--help"])
    quiet = capsys.readouterr().out.split("-q, --quiet", 1)[1].split("\n  -", 1)[0]
    assert "table" in quiet


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--verson"], "unrecognized arguments: --verson; did you mean --version?"),
        (["swep", "m.yml"], "invalid choice: 'swep' (choose from 'sweep', "),
        (["swep", "m.yml"], "did you mean sweep?"),
    ],
)
def test_cli__a_mistyped_top_level_flag_or_command_gets_the_closest_real_one(argv, says, capsys):
    with pytest.raises(SystemExit) as exited:
        parse_arguments(build_parser(), argv)
    assert exited.value.code == 2
    assert says in capsys.readouterr().err


def test_cli__takes_an_abbreviated_top_level_flag_as_argparse_does():
    args = parse_arguments(build_parser(), ["--verb", "diff", "a.json"])
    assert args.verbose is True and args.command == "diff"

"""No command prints a Python traceback for any input: bad input is exit 2 with a message.

A property test throws random argument vectors and files at every command that cannot start real work,
and a table of the inputs that used to end in a traceback checks each message.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dr.cli import main
from tests.conftest import EXAMPLE_GRAPH, REPO


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return hostile_files(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def fuzz_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The fuzzer's own copy: a random `audit --textfile deep` rewrites its files, and the fixed cases
    below must still find theirs as written (they failed now and then after such a run)."""
    return hostile_files(tmp_path_factory.mktemp("fuzzed"))


def hostile_files(root: Path) -> dict[str, str]:
    # The commands run in a scratch copy of the project: a random `--textfile`, `--out` or `--state-dir`
    # must never write into the checkout (an early version overwrote stacks/cluster.yaml).
    shutil.copytree(REPO / "stacks", root / "stacks")
    shutil.copytree(REPO / "playbooks", root / "playbooks")
    (root / "binary.yaml").write_bytes(os.urandom(300))
    (root / "list.yaml").write_text("- a\n- b\n")
    (root / "cycle.yaml").write_text("cluster: x\ncomponents:\n  a: {layer: os, depends_on: [b]}\n"
                                     "  b: {layer: os, depends_on: [a]}\n")
    (root / "deep.yaml").write_text("cluster: x\ncomponents: " + "[" * 5000 + "\n")
    (root / "bad.json").write_text("{not json")
    (root / "secrets.yaml").write_text("restic_password: [unclosed\n")
    (root / "dir").mkdir()
    os.mkfifo(root / "fifo")
    (root / "status.json").write_text('{"pvcs": [], "cnpg": [], "longhorn": [], "velero": []}')
    return {"example": str(root / "stacks" / "cluster.yaml"), "workdir": str(root), "binary": str(root / "binary.yaml"), "list": str(root / "list.yaml"),
            "cycle": str(root / "cycle.yaml"), "deep": str(root / "deep.yaml"), "badjson": str(root / "bad.json"),
            "secrets": str(root / "secrets.yaml"), "dir": str(root / "dir"), "fifo": str(root / "fifo"),
            "missing": str(root / "missing" / "x"), "empty_status": str(root / "status.json"), "devnull": "/dev/null", "root": "/"}


COMMANDS = [["plan"], ["plan", "--json"], ["docs", "--check"], ["audit", "--k8s-status"], ["audit", "--secrets"],
            ["preview", "--stack"], ["history", "--state-dir"], ["schedule", "--cron"], ["sandbox", "status"],
            ["plan", "--only"], ["audit", "--textfile"], ["docs", "--out"], ["plan", "--state-dir"]]
WORDS = ["--graph", "--mode", "--json", "--only", "prod", "drill", "banana", "--out", "--check", "0", "-1",
         "--concurrency", "--state-dir", "* * * * *", "99 99 * * *", "--ignore", "coverage", "--help-me"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@settings(max_examples=int(os.environ.get("DR_FUZZ_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(COMMANDS), extra=st.lists(st.one_of(
    st.sampled_from(WORDS), st.sampled_from(["example", "binary", "list", "cycle", "deep", "badjson", "secrets", "dir",
                                            "fifo", "missing", "devnull", "root"]),
    st.text(alphabet=string.printable, max_size=12)), max_size=5))
def test_random_arguments_never_end_in_a_traceback(command: list[str], extra: list[str], fuzz_files: dict[str, str],
                                                   capsys: pytest.CaptureFixture[str], tmp_path_factory) -> None:
    files = fuzz_files
    argv = [*command, *(files.get(word, word) for word in extra)]
    if "schedule" in argv and "--out" not in argv:
        argv += ["--out", str(tmp_path_factory.mktemp("schedule"))]
    if "docs" in argv and "--check" not in argv:
        argv += ["--check"]  # never rewrite the committed docs
    with contextlib.chdir(files["workdir"]):
        code, output = run(argv, capsys)
    assert "Traceback" not in output, argv
    assert code in (0, 1, 2), (argv, code)


@pytest.mark.parametrize(("argv", "message"), [
    (["plan", "--graph", "{cycle}"], "dependency cycle"),
    (["audit", "--graph", "{cycle}"], "dependency cycle"),
    (["plan", "--graph", "{deep}"], "nests lists or mappings more than 100 deep"),
    (["plan", "--graph", "{dir}"], "this is a directory"),
    (["plan", "--graph", "{fifo}"], "not a regular file"),
    (["audit", "--secrets", "{secrets}"], "not valid YAML"),
    (["audit", "--secrets", "{binary}"], "not UTF-8 text"),
    (["audit", "--secrets", "{fifo}"], "not a regular file"),
    (["audit", "--k8s-status", "{fifo}"], "not a regular file"),
    (["audit", "--k8s-status", "{empty_status}", "--textfile", "{fifo}"], "not a regular file"),
    (["audit", "--k8s-status", "{badjson}"], "not valid JSON"),
    (["audit", "--k8s-status", "{missing}"], "No such file"),
    (["audit", "--k8s-status", "{devnull}", "--textfile", "{root}"], "not a regular file"),
    (["audit", "--k8s-status", "{empty_status}", "--textfile", "{root}"], "not a regular file"),
    (["drill", "--concurrency", "0"], "must be 1 or more"),
    (["plan", "--mode", "banana"], "invalid choice"),
])
def test_each_input_that_used_to_crash_is_exit_2_with_a_message(argv: list[str], message: str,
                                                                files: dict[str, str],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run([a.format(**files) for a in argv], capsys)
    assert code == 2 and message in output and "Traceback" not in output, output


@pytest.mark.parametrize(("argv", "message"), [
    (["drill", "--secrets", "x.yaml"], "--secrets only works with --hosts"),
    (["drill", "--keep"], "--keep only works with --stack"),
    (["drill", "--stack", "drill", "--resume"], "--resume only works with --sandbox or --hosts"),
    (["sandbox", "down", "--json"], "--json only works with status"),
    (["sandbox", "status", "--etcd-data", "/tmp"], "--etcd-data only works with up"),
])
def test_an_option_that_needs_another_is_refused_before_any_work_with_the_subcommands_usage(
        argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`dr drill --keep` used to run a whole sandbox drill and ignore --keep."""
    code, output = run([*argv, "--state-dir", str(tmp_path / "state")], capsys)
    assert code == 2 and message in output, output
    assert f"usage: dr {argv[0]} " in output, "the usage shown must be the subcommand's"
    assert not (tmp_path / "state").exists(), "work started before the refusal"


def test_schedule_drills_the_graph_it_was_given_and_checks_it_first(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run(["schedule", "--cron", "0 3 * * 0", "--graph", str(tmp_path / "absent.yaml"),
                        "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "absent.yaml" in output and not (tmp_path / "out").exists()
    code, output = run(["schedule", "--cron", "0 3 * * 0", "--graph", str(EXAMPLE_GRAPH), "--workdir", "/opt/dr",
                        "--image", "registry.example/dr:1.0", "--out", str(tmp_path / "out")], capsys)
    assert code == 0, output
    service = (tmp_path / "out" / "dr-drill.service").read_text()
    assert f'--graph "{EXAMPLE_GRAPH}"' in service
    cronjob = (tmp_path / "out" / "dr-drill-cronjob.yaml").read_text()
    assert "- --graph\n" in cronjob and str(EXAMPLE_GRAPH) in cronjob


def test_history_reads_and_never_creates_the_state_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run(["history", "--state-dir", str(tmp_path / "typo" / "state")], capsys)
    assert code == 0 and "No drills recorded yet" in output
    assert not (tmp_path / "typo").exists(), "a mistyped --state-dir was created by a read-only command"


def test_options_are_checked_before_the_data_and_messages_say_what_is_true(run_cli, tmp_path) -> None:
    """`dr history --png` into a directory that does not exist was accepted whenever the history was empty;
    a missing graph was reported at "line 0"; `dr --help` promised a CronJob `schedule` writes only with
    --image."""
    result = run_cli("history", "--state-dir", str(tmp_path / "empty"), "--png", str(tmp_path / "no" / "x.png"))
    assert result.code == 2 and "does not exist" in result.err
    result = run_cli("history", "--state-dir", str(tmp_path / "empty"), "--png", str(tmp_path))
    assert result.code == 2 and "is a directory" in result.err
    missing = tmp_path / "missing.yaml"
    result = run_cli("plan", "--graph", str(missing))
    assert result.code == 2 and f"{missing}: no such file" in result.err and ":0:" not in result.err
    from dr.cli import build_parser

    assert "with --image, a Kubernetes CronJob" in " ".join(build_parser().format_help().split())

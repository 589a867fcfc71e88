import os
import re

import pytest

from tffprune.reporting.files import (
    OutputDirectoryError,
    atomic_path,
    pid_namespace,
    prepare_output_dir,
    remove_stale_directories,
    write_text_atomic,
)


def test_atomic_write_has_the_permissions_of_a_plain_open(tmp_path):
    previous = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "summary.json", "{}")
        (tmp_path / "plain.json").write_text("{}")
    finally:
        os.umask(previous)

    written = (tmp_path / "summary.json").stat().st_mode & 0o777
    assert written == (tmp_path / "plain.json").stat().st_mode & 0o777 == 0o644


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.csv"
    target.write_text("old")

    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("crash mid-write")

    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_existing_results_are_not_overwritten_without_a_flag(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text("{}")

    with pytest.raises(OutputDirectoryError, match="already holds results"):
        prepare_output_dir(tmp_path / "run")
    assert prepare_output_dir(tmp_path / "run", overwrite=True) == tmp_path / "run"


def test_only_this_namespaces_ended_processes_lose_their_directories(
    tmp_path, ended_pid
):
    # Another container sharing /tmp runs its own process numbered like our
    # ended one: whether it has ended cannot be told from here.
    ours = tmp_path / f"tffprune-clients-{ended_pid}.{pid_namespace()}-a"
    theirs = tmp_path / f"tffprune-clients-{ended_pid}.ns1-b"
    alive = tmp_path / f"tffprune-clients-{os.getpid()}.{pid_namespace()}-c"
    for path in (ours, theirs, alive):
        path.mkdir()

    assert remove_stale_directories("clients", tmp_path) == [ours]
    assert not ours.exists()
    assert theirs.is_dir() and alive.is_dir()


def test_the_namespace_is_one_word_of_a_file_name():
    # "-" and "." separate the parts of a process directory's name.
    assert re.fullmatch(r"\w+", pid_namespace(), re.ASCII)

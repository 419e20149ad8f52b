"""What `load`, `summary`, `query` and `plot` make of a folder that holds more than our timelines
(another program's Parquet, a renamed or copied timeline, a corrupt file), and `query`'s sandbox:
each attack fails with one line and exit status 2, normal queries and `-o` still work.

Hand-made timelines (tests/test_timeline_summary.py's `write`), real pyarrow and DuckDB, the CLI
in subprocesses."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fer_video.timeline import load
from test_timeline_summary import write


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fer_video.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def folder(tmp_path) -> Path:
    out = tmp_path / "out"
    write(out, "meeting", {1: [(0, 100, "neutral"), (100, 150, "happy")]})
    write(out, "talk", {2: [(0, 60, "happy")]}, fps=30, stride=3, frame_count=120)
    return out


def one_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fer-video: error: "), proc.stderr
    return lines[0]


# --- foreign, renamed, copied and corrupt Parquet files ----------------------------------------------

def test_another_programs_parquet_is_skipped_and_named(folder):
    """Before: `summary` failed (idxmax of an all-NA column) and `query` counted its rows."""
    pq.write_table(pa.table({"x": [1, 2, 3], "video_id": ["a", "b", "c"]}), folder / "export.parquet")
    proc = cli("summary", folder, "--by", "video", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert {r["video_id"] for r in json.loads(proc.stdout)} == {"meeting", "talk"}
    assert proc.stderr.splitlines() == [
        f"fer-video: warning: {folder / 'export.parquet'}: skipped, not a fer-video timeline (no fer_video metadata)"]

    proc = cli("query", folder, "SELECT count(*) AS n, count(DISTINCT video_id) AS v FROM timeline", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"n": 170, "v": 2}]
    assert "export.parquet: skipped" in proc.stderr

    assert set(load(folder)["video_id"]) == {"meeting", "talk"}
    proc = cli("plot", folder, "--out", folder.parent / "plots")
    assert proc.returncode == 0, proc.stderr
    assert "export.parquet: skipped" in proc.stderr
    assert sorted(p.name for p in (folder.parent / "plots").iterdir()) == [
        "meeting.shares.png", "meeting.timeline.png", "talk.shares.png", "talk.timeline.png"]


def test_a_renamed_timeline_is_still_its_video(folder):
    """Before: `videos` and `summary --by video` showed a phantom video named after the file."""
    (folder / "meeting.parquet").rename(folder / "meeting-backup.parquet")
    proc = cli("query", folder, "SELECT video_id FROM videos ORDER BY 1", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["video_id", "meeting", "talk"]
    proc = cli("summary", folder, "--by", "video", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert [line.split(",")[0] for line in proc.stdout.split()] == ["video_id", "meeting", "talk"]


def test_two_files_of_one_video_are_read_once_and_named(folder):
    """Before: a copy of a timeline doubled every count of its video, silently."""
    shutil.copy(folder / "talk.parquet", folder / "talk (copy).parquet")
    proc = cli("query", folder, "SELECT video_id, count(*) AS n FROM timeline GROUP BY 1 ORDER BY 1", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["video_id,n", "meeting,150", "talk,20"]
    assert proc.stderr.splitlines() == [
        f"fer-video: warning: {folder / 'talk (copy).parquet'}: skipped, it holds video 'talk' as talk.parquet does"]


@pytest.mark.parametrize("command", [["summary"], ["query", "SELECT 1"], ["plot", "--video", "talk"]])
def test_a_corrupt_parquet_file_is_one_line_naming_it(folder, command):
    (folder / "broken.parquet").write_bytes(b"PAR1 this was cut short")
    line = one_error(cli(command[0], folder, *command[1:]))
    assert line.startswith(f"fer-video: error: {folder / 'broken.parquet'}: not a readable Parquet file"), line


def test_a_file_that_is_not_a_timeline_asked_for_alone(tmp_path):
    pq.write_table(pa.table({"x": [1]}), tmp_path / "export.parquet")
    line = one_error(cli("summary", tmp_path / "export.parquet"))
    assert line == f"fer-video: error: {tmp_path / 'export.parquet'}: not a fer-video timeline (no fer_video metadata)"


def damage(path: Path, change) -> None:
    """Rewrite a timeline with `change` applied to its table, keeping fer-video's metadata, as a
    script that edits a timeline with pandas or pyarrow might."""
    table = pq.read_table(path)
    pq.write_table(change(table).replace_schema_metadata(table.schema.metadata), path)


def _set(table: pa.Table, name: str, column) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, column)


DAMAGES = {
    "label dropped": (lambda t: t.drop_columns(["label"]), "no column label"),
    "p_happy and x dropped": (lambda t: t.drop_columns(["p_happy", "x"]), "no column x, p_happy"),
    "x as text": (lambda t: _set(t, "x", pa.array(["1.0"] * t.num_rows)), "x is string, not float"),
    "track_id as double": (lambda t: _set(t, "track_id", t["track_id"].cast(pa.float64())),
                           "track_id is double, not int32"),
    "label as its codes": (lambda t: _set(t, "label", pa.array([3] * t.num_rows, pa.int64())),
                           "label is int64, not dictionary<values=string, indices=int8, ordered=0>"),
    "labels null": (lambda t: _set(t, "label", pa.nulls(t.num_rows, pa.string())), "label has nulls"),
}


@pytest.mark.parametrize("command", [["summary", "--format", "csv"], ["plot", "--video", "talk"],
                                     ["query", "SELECT video_id, count(*) AS n, count(label) AS labelled "
                                      "FROM timeline GROUP BY 1", "--format", "csv"]])
@pytest.mark.parametrize("damaged", list(DAMAGES))
def test_a_damaged_timeline_is_skipped_with_one_line_naming_it(folder, damaged, command, tmp_path):
    """Before: `summary` and `plot` failed with "idxmax with skipna=True encountered all NA", and
    `query` with a BinderException or NULL labels; none named the file."""
    change, problem = DAMAGES[damaged]
    damage(folder / "meeting.parquet", change)
    if command[0] == "plot":
        command = [*command, "--out", tmp_path / "plots"]
    proc = cli(command[0], folder, *command[1:])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        f"fer-video: warning: {folder / 'meeting.parquet'}: skipped, a damaged timeline ({problem})"], proc.stderr
    if command[0] == "summary":
        assert [line.split(",")[:2] for line in proc.stdout.split()[1:]] == [["talk", "2"]]
    elif command[0] == "query":
        assert proc.stdout.split() == ["video_id,n,labelled", "talk,20,20"]
    else:
        assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["talk.shares.png", "talk.timeline.png"]


@pytest.mark.parametrize("command", [["summary"], ["query", "SELECT count(*) FROM timeline"]])
def test_a_damaged_timeline_asked_for_alone_is_an_error_naming_it(folder, command):
    damage(folder / "meeting.parquet", DAMAGES["label dropped"][0])
    line = one_error(cli(command[0], folder / "meeting.parquet", *command[1:]))
    assert line == f"fer-video: error: {folder / 'meeting.parquet'}: a damaged timeline (no column label)"


def test_a_folder_of_damaged_timelines_is_an_error(folder):
    for name in ("meeting", "talk"):
        damage(folder / f"{name}.parquet", DAMAGES["x as text"][0])
    proc = cli("summary", folder)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.splitlines()[-1] == f"fer-video: error: {folder}: no fer-video timelines in this folder"


# --- query's sandbox -----------------------------------------------------------------------------------

ATTACKS = {
    "read a file": "SELECT * FROM read_csv('/etc/passwd')",
    "read a file as a table": "SELECT * FROM '/etc/passwd'",
    "list files": "SELECT * FROM glob('/etc/*')",
    "read the folder's other files": "SELECT * FROM read_parquet('{folder}/*.parquet')",
    "copy to a file": "COPY timeline TO '{folder}/copy.parquet'",
    "copy after a query": "SELECT 1; COPY timeline TO '{folder}/copy.parquet'",
    "attach a database": "ATTACH '{folder}/new.duckdb' AS db",
    "install an extension": "INSTALL httpfs",
    "load an extension": "LOAD httpfs",
    "turn file access back on": "SET enable_external_access = true",
    "unlock the configuration": "RESET lock_configuration",
}


WRITES = {
    "EXPLAIN ANALYZE COPY": "EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '{timeline}' (FORMAT parquet, USE_TMP_FILE false)",
    "EXPLAIN (FORMAT json) COPY": "EXPLAIN (FORMAT json) COPY (SELECT 1 AS a) TO '{timeline}' (FORMAT parquet)",
    "EXPLAIN ANALYZE COPY after a comment": "/* x */ EXPLAIN ANALYZE COPY timeline TO '{timeline}' (FORMAT parquet)",
    "EXPLAIN ANALYZE CREATE TABLE AS": "EXPLAIN ANALYZE CREATE TABLE t AS SELECT * FROM timeline",
    "COPY of a CTE": "COPY (WITH t AS (SELECT 1 AS a) SELECT * FROM t) TO '{timeline}' (FORMAT parquet)",
    "a CTE in front of COPY": "WITH t AS (SELECT 1 AS a) COPY t TO '{timeline}' (FORMAT parquet)",
    "COPY over a timeline": "COPY timeline TO '{timeline}' (FORMAT parquet, USE_TMP_FILE false)",
    "CREATE TABLE AS": "CREATE TABLE t AS SELECT * FROM timeline",
    "EXPORT DATABASE": "EXPORT DATABASE '{folder}'",
    "PRAGMA profiling_output": "PRAGMA profiling_output = '{timeline}'",
    "PRAGMA enable_profiling": "PRAGMA enable_profiling = 'json'",
    "ATTACH a timeline": "ATTACH '{timeline}' AS db",
    "read a timeline's bytes": "SELECT * FROM read_blob('{timeline}')",
    "read_text of a file": "SELECT * FROM read_text('/etc/passwd')",
    "sniff_csv of a file": "SELECT * FROM sniff_csv('/etc/passwd')",
}


@pytest.mark.parametrize("attack", [*ATTACKS, *WRITES])
def test_no_statement_however_wrapped_reads_or_writes_a_file(folder, attack):
    """Before: each of ATTACKS ran with the user's full file access; `EXPLAIN ANALYZE COPY ... TO
    '<timeline>'` passed the one-read-query check (it is an EXPLAIN) and DuckDB, allowed the
    timelines' paths, replaced a timeline with a 1-row file. Now each fails in one line, exit 2,
    and every file's bytes stay as they were."""
    sql = {**ATTACKS, **WRITES}[attack].format(timeline=folder / "meeting.parquet", folder=folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    line = one_error(cli("query", folder, sql))
    assert "SQL" in line, line
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not (folder.parent / "new.duckdb").exists()


def test_the_sandbox_holds_below_the_statement_check(folder):
    """Even a statement that got past the one-read-query check could not reach a file."""
    import duckdb

    from fer_video.timeline.query import connect

    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    con = connect(folder)
    try:
        assert con.execute("SELECT count(*) FROM timeline").fetchall() == [(170,)]
        for sql in (f"COPY timeline TO '{folder}/x.csv'", "SELECT * FROM read_csv('/etc/passwd')",
                    f"ATTACH '{folder}/x.duckdb'", "SET enable_external_access = true", "INSTALL httpfs",
                    f"EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '{folder}/talk.parquet' (FORMAT parquet)",
                    f"SELECT * FROM read_blob('{folder}/talk.parquet')", f"EXPORT DATABASE '{folder}'"):
            with pytest.raises(duckdb.Error):
                con.execute(sql)
    finally:
        con.close()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_normal_queries_and_output_files_still_work(folder, tmp_path):
    proc = cli("query", folder, "WITH t AS (SELECT * FROM timeline JOIN videos USING (video_id)) "
               "SELECT video_id, count(*) * any_value(frame_step_s) AS s FROM t GROUP BY 1 ORDER BY 1",
               "--format", "csv", "-o", tmp_path / "result.csv")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "result.csv").read_text().split() == ["video_id,s", "meeting,6.0", "talk,2.0"]
    proc = cli("query", folder, "DESCRIBE timeline", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert "video_id" in proc.stdout
    proc = cli("query", folder, "SELECT label, count(*) AS n FROM timeline GROUP BY 1 ORDER BY 1", "--format",
               "parquet", "-o", tmp_path / "labels.parquet")
    assert proc.returncode == 0, proc.stderr
    assert pq.read_table(tmp_path / "labels.parquet").to_pylist() == [
        {"label": "happy", "n": 70}, {"label": "neutral", "n": 100}]


def test_allow_files_gives_duckdb_its_file_access(folder, tmp_path):
    (tmp_path / "names.csv").write_text("video_id,who\nmeeting,Ann\n")
    proc = cli("query", folder, "--allow-files", "SELECT who, count(*) AS n FROM timeline "
               f"JOIN read_csv('{tmp_path / 'names.csv'}') USING (video_id) GROUP BY 1", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["who,n", "Ann,150"]


# --- options that select nothing -----------------------------------------------------------------------

@pytest.mark.parametrize("command", ["summary", "query"])
def test_output_to_a_folder_is_a_usage_error(folder, tmp_path, command):
    """Before: IsADirectoryError from the rename, exit 1."""
    args = ["SELECT 1 AS a"] if command == "query" else []
    line = one_error(cli(command, folder, *args, "--format", "csv", "-o", tmp_path))
    assert line == f"fer-video: error: {tmp_path}: is a folder; -o takes a file name"


@pytest.mark.parametrize("range_", [("15", "5"), ("5", "5")])
def test_an_empty_or_reversed_time_range_is_a_usage_error(folder, range_):
    """Before: 0 rows and exit 0, as if no face had been seen."""
    start, end = range_
    line = one_error(cli("summary", folder, "--start", start, "--end", end))
    assert line == f"fer-video: error: --start {float(start):g} s is not before --end {float(end):g} s: an empty time range"


@pytest.mark.parametrize("command", [["summary"], ["summary", "--video", "talk"], ["plot", "--video", "talk"],
                                     ["report", "--video", "talk"]])
def test_a_track_that_is_not_there_is_named(folder, command, tmp_path):
    """Before: `summary --track 99` gave 0 rows and exit 0; `plot --track 2 --track 99` drew track 2
    alone and said nothing of 99."""
    extra = ["--out", tmp_path / "plots"] if command[0] != "summary" else []
    line = one_error(cli(*command[:1], folder, *command[1:], "--track", "2", "--track", "99", *extra))
    where = "video 'talk'" if "talk" in command else f"{folder}"
    tracks = "2" if "talk" in command else "1, 2"
    assert line == f"fer-video: error: no track 99 in {where} (tracks: {tracks})"


def test_a_range_with_no_face_rows_says_so(folder):
    proc = cli("summary", folder, "--start", "100", "--end", "200", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[1:] == []
    assert proc.stderr.splitlines() == ["fer-video: warning: no face rows from 100 s to 200 s (the last one is at 5.96 s)"]

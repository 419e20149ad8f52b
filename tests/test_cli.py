"""The command line itself: arguments checked before any work, options alike everywhere, the
direct path (no Prefect) when no server is configured, and real signals.

The CLI runs in subprocesses (the installed `fer-video`), with no Prefect server configured unless
a test says otherwise (PREFECT_HOME of the session, no PREFECT_API_URL).
"""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import REPO, cli_command, hidden_partials

SMALL = dict(width=320, height=180, fps=10)


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def cli(*args, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*cli_command(), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env=env or _env())


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    from fer_video.samples import make_clip

    path = tmp_path_factory.mktemp("cli_inputs")
    make_clip(path / "a.mp4", seconds=0.3, **SMALL)
    return path


def _usage_error(proc, *says: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("fer-video: error: "), lines
    assert "Traceback" not in proc.stderr
    for text in says:
        assert text in lines[0], lines[0]
    return lines[0]


# --- Checked first: one line, exit 2, before anything starts ----------------------------------

BAD = {
    "missing input": (["annotate", "{folder}/nope.mp4"], ["nope.mp4: no such file"]),
    "folder given to annotate": (["annotate", "{folder}"], ["is a folder", "fer-video batch"]),
    "file given to batch": (["batch", "{folder}/a.mp4"], ["is a file, not a folder"]),
    "missing folder": (["batch", "{folder}/nowhere"], ["nowhere: no such folder"]),
    "pattern matching nothing": (["batch", "{folder}", "--pattern", "*.xyz"], ["no videos or images", "'*.xyz'"]),
    "out is a file": (["annotate", "{folder}/a.mp4", "--out", "{folder}/a.mp4"], ["--out", "is a file"]),
    "out under a file": (["annotate", "{folder}/a.mp4", "--out", "{folder}/a.mp4/x"], ["is a file, not a folder"]),
    "out not writable": (["annotate", "{folder}/a.mp4", "--out", "/proc/fer-video-out"], ["cannot write there"]),
    "unknown preset": (["annotate", "{folder}/a.mp4", "--preset", "bogus"], ["'bogus'", "ultrafast", "veryslow"]),
    "min-face too small": (["annotate", "{folder}/a.mp4", "--min-face", "2"], ["--min-face", "out of range"]),
    "segments 0": (["annotate", "{folder}/a.mp4", "--segments", "0"], ["--segments", "out of range"]),
    "workers 0": (["batch", "{folder}", "--workers", "0"], ["--workers", "out of range"]),
    "stride 0": (["batch", "{folder}", "--stride", "0"], ["--stride", "out of range"]),
    "stride not a number": (["annotate", "{folder}/a.mp4", "--stride", "x"], ["--stride", "not a whole number"]),
    "bad smoothing": (["batch", "{folder}", "--smoothing", "median:3"], ["smoothing", "median"]),
    "missing model": (["annotate", "{folder}/a.mp4", "--model", "{folder}/no.keras"], ["--model", "no such file"]),
    "model not a .keras": (["annotate", "{folder}/a.mp4", "--model", "{folder}/a.mp4"], ["--model", "not a .keras model"]),
    "bad every": (["serve", "{folder}", "--every", "10x"], ["--every '10x'"]),
    "bad cron": (["serve", "{folder}", "--cron", "61 * * * *"], ["--cron", "minute '61'"]),
    "cron of 3 fields": (["serve", "{folder}", "--cron", "* * *"], ["--cron", "5 fields"]),
    "abbreviated option": (["summary", "{folder}", "--out", "x"], ["unrecognized arguments: --out"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_mistake_is_one_line_and_exit_2_before_any_work(case, folder, tmp_path):
    args, says = BAD[case]
    args = [a.format(folder=folder) for a in args]
    if "--out" not in args and args[0] != "summary":
        args += ["--out", str(tmp_path / "out")]
    _usage_error(cli(*args), *says)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["a.mp4"]


def test_a_fifo_is_named_as_such(folder, tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    line = _usage_error(cli("annotate", fifo, "--out", tmp_path / "out"), str(fifo))
    assert "FIFO" in line and "empty" not in line


def test_checks_import_nothing_heavy(folder, tmp_path):
    """Checking the arguments (and deciding there is nothing to do) imports no Prefect,
    TensorFlow, pandas, OpenCV or SciPy: why the mistakes above answer at once."""
    script = textwrap.dedent(f"""
        import sys
        from fer_video.cli import run
        code = run(["annotate", {str(folder / 'nope.mp4')!r}])
        heavy = sorted(m for m in ("prefect", "tensorflow", "pandas", "cv2", "scipy", "duckdb", "matplotlib",
                                   "sklearn", "skimage", "tqdm", "pyarrow") if m in sys.modules)
        print(code, heavy)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=_env(),
                          timeout=60)
    assert proc.stdout.split(maxsplit=1) == ["2", "[]\n"], proc.stdout + proc.stderr


# --- Options alike everywhere ---------------------------------------------------------------------

def _option_help(command: str) -> dict[str, str]:
    from fer_video.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {a.option_strings[-1]: (a.help, a.default) for a in sub._actions if a.option_strings}


def _commands() -> dict:
    from fer_video.cli import build_parser

    return next(a for a in build_parser()._actions if a.dest == "command").choices


def test_pipeline_commands_share_options_help_and_defaults():
    from fer_video.options import OUTPUT, pipeline_options

    shared = [o.flag for o in pipeline_options() if o.folder] + [o.flag for o in OUTPUT]
    helps = {command: _option_help(command) for command in ("annotate", "demo", "batch", "serve")}
    for flag in shared:
        values = {command: options.get(flag) for command, options in helps.items()}
        assert len(set(values.values())) == 1 and None not in values.values(), (flag, values)
    for command in ("batch", "serve"):
        for flag, (text, _) in helps[command].items():
            assert text, f"{command} {flag} has no help"


def _argparse_defaults(command: str) -> dict:
    sub = _commands()[command]
    return {a.dest: a.default for a in sub._actions if a.option_strings}


def test_every_option_default_in_argparse_is_the_librarys():
    """Each pipeline option's default, as argparse gives it to every command that takes it, is
    AnnotateOptions' field default and the annotate-folder flow's parameter default (min_score too)."""
    from dataclasses import fields

    from fer_video.cli.annotate import options_of
    from fer_video.jobs import MIN_SCORE, AnnotateOptions
    from fer_video.options import FOLDER, QUIET, pipeline_options
    from flows.batch import annotate_folder

    library = AnnotateOptions()
    flow = inspect.signature(annotate_folder.fn).parameters
    declared = {f.name for f in fields(AnnotateOptions) if "option" in f.metadata}
    assert declared >= {"out_dir", "stride", "detector", "min_face", "min_score", "smoothing", "model", "video",
                        "preset", "segments", "persons", "identity", "people"}
    expected_cli = {"out": "fer-video-out", "stride": 1, "detector": "blazeface", "min_face": 40,
                    "min_score": MIN_SCORE, "smoothing": "window:0.5", "model": None, "no_video": False,
                    "preset": "ultrafast", "no_persons": False, "identity": False, "people": None}
    for command in ("annotate", "demo", "batch", "serve"):
        cli = _argparse_defaults(command)
        for dest, default in expected_cli.items():
            assert cli[dest] == default and type(cli[dest]) is type(default), (command, dest, cli[dest])
        assert ("segments" in cli) is (command in ("annotate", "demo"))
        # Parsed without options, each command's arguments are AnnotateOptions' defaults.
        inputs = {"annotate": ["x.mp4"], "demo": [], "batch": ["f"], "serve": ["f", "--every", "1m"]}[command]
        parsed = options_of(_commands()[command].parse_args(inputs))
        assert {f: getattr(parsed, f) for f in declared} == {f: getattr(library, f) for f in declared}, command
    assert library.min_score == MIN_SCORE == flow["min_score"].default == 0.70
    flow_expected = {"out": str(library.out_dir), "video": library.video, "persons": library.persons,
                     **{name: getattr(library, name) for name in ("stride", "detector", "min_face", "min_score",
                                                                  "smoothing", "model", "preset", "identity",
                                                                  "people")}}
    for name, default in flow_expected.items():
        assert flow[name].default == default and type(flow[name].default) is type(default), name
    for option in pipeline_options():  # any option declared later too
        field_default = getattr(library, option.name)
        if option.folder:
            assert flow[option.parameter].default == (str(field_default) if option.path and field_default else
                                                      field_default), option.flag
    batch = _argparse_defaults("batch")
    for option in (*FOLDER, QUIET):
        assert batch[option.dest] == option.default
        if option.parameter:
            assert flow[option.parameter].default == option.default, option.flag
    assert set(flow) == {"folder", "pattern", "retries", "quiet", "wait",
                         *(o.parameter for o in pipeline_options() if o.folder)} >= set(flow_expected)
    from fer_video import jobs
    from fer_video.expression.classify import DEFAULT_MODEL

    assert jobs.DEFAULT_MODEL == DEFAULT_MODEL


def test_folder_parameters_round_trip_to_the_options():
    """What batch and serve pass the folder flow is what the flow turns back into AnnotateOptions."""
    from fer_video.cli.annotate import options_of
    from fer_video.cli.batch import folder_parameters
    from fer_video.options import folder_flow_annotate_options

    args = _commands()["batch"].parse_args(["in", "--out", "o", "--stride", "3", "--min-score", "0.8", "--no-video",
                                            "--identity", "--people", "p", "--model", "m.keras"])
    parameters = folder_parameters(args.folder, args)
    assert parameters["min_score"] == 0.8 and parameters["video"] is False and parameters["identity"] is True
    assert parameters["out"] == str(Path("o").resolve()) and parameters["people"] == str(Path("p").resolve())
    assert "persons" not in parameters  # only when set: deployments stored before stay as they were
    flow_options = folder_flow_annotate_options(parameters, progress=False)
    cli_options = options_of(args, progress=False)
    for name in ("stride", "min_score", "video", "identity", "people", "detector", "smoothing", "preset"):
        assert getattr(flow_options, name) == getattr(cli_options, name), name
    plain = folder_parameters("in", _commands()["batch"].parse_args(["in"]))
    assert not {"persons", "identity", "people"} & set(plain)


def test_common_flags_are_declared_once():
    """--verbose is every command's, --quiet every pipeline command's, each the same option
    everywhere; and each shared flag is written once in fer_video's source (its declaration)."""
    import ast

    from fer_video.options import FOLDER, ORCHESTRATION, OUTPUT, pipeline_options

    commands = _commands()
    verbose = {name: next(a for a in sub._actions if "--verbose" in a.option_strings).help
               for name, sub in commands.items()}
    assert len(set(verbose.values())) == 1, verbose
    shared = {o.flag for o in (*pipeline_options(), *FOLDER, *OUTPUT, *ORCHESTRATION)}
    declared: dict[str, int] = {flag: 0 for flag in shared}
    inline = set()  # (module, flag) of add_argument calls with a shared option's flag
    for path in (REPO / "fer_video").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            flags = {a.value for a in node.args if isinstance(a, ast.Constant) and a.value in shared}
            if name in ("Option", "option"):
                for flag in flags:
                    declared[flag] += 1
            elif name == "add_argument":
                inline |= {(path.name, flag) for flag in flags}
    assert all(n == 1 for n in declared.values()), {flag: n for flag, n in declared.items() if n != 1}
    # The pipeline commands take the declared options only; other commands may have an option of
    # their own under the same flag (evaluate's --out and --model, plot's --out), never --verbose.
    assert not {(module, flag) for module, flag in inline if module in ("annotate.py", "batch.py")}, inline
    assert not {(module, flag) for module, flag in inline if flag in ("--verbose", "--quiet")}, inline


def test_only_the_cli_imports_flows():
    import ast

    for path in (REPO / "fer_video").rglob("*.py"):
        if "cli" in path.relative_to(REPO / "fer_video").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n == "flows" or n.startswith("flows.") for n in names), path


def test_quiet_and_verbose_on_every_pipeline_command():
    for command in ("annotate", "demo", "batch", "serve"):
        assert {"--quiet", "--verbose"} <= set(_option_help(command)), command


# --- No server configured: the stages run directly ---------------------------------------------------

def test_direct_run_imports_neither_prefect_nor_tensorflow(folder, tmp_path):
    """Annotating with no Prefect server configured runs the pipeline in this process: Prefect
    and TensorFlow are never imported, and the first line says the run is not recorded."""
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import sys
        from fer_video.cli import run
        code = run(["annotate", {str(folder / 'a.mp4')!r}, "--out", {str(out)!r}])
        print("RESULT", code, "prefect" in sys.modules, "tensorflow" in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=_env(),
                          timeout=180)
    assert "RESULT 0 False False" in proc.stdout, proc.stdout + proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first == f"fer-video: annotating 1 input -> {out}/, not recorded in Prefect (no server configured; " \
                    "--prefect records it)", first
    assert (out / "a.parquet").exists() and (out / "a.mp4").exists()
    assert "1 track ->" in proc.stdout or "tracks ->" in proc.stdout


def test_one_track_reads_as_english(tmp_path):
    from fer_video.samples import Actor, make_clip

    clip = make_clip(tmp_path / "one.mp4", seconds=0.3, width=320, height=180, fps=10,
                     actors=[Actor(x=0.5, y=0.5, width=110, dx=0, scale=0, period=3.0)], audio=False)
    proc = cli("annotate", clip, "--out", tmp_path / "out", "--no-video", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert ", 1 track -> " in proc.stdout, proc.stdout


def test_configured_server_is_found_without_importing_prefect(tmp_path):
    profiles = tmp_path / "profiles.toml"
    profiles.write_text('active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://127.0.0.1:9/api"\n'
                        '[profiles.solo]\nPREFECT_SERVER_EPHEMERAL_ENABLED = "true"\n')
    script = "import sys; from flows.server import configured_api_url as c; print(c(), 'prefect' in sys.modules)"
    base = {k: v for k, v in _env().items() if not k.startswith("PREFECT_PROFILE")}

    def found(**env) -> str:
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                              env={**base, "PYTHONPATH": str(REPO), **env}, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert found(PREFECT_PROFILES_PATH=str(profiles)) == "http://127.0.0.1:9/api False"
    assert found(PREFECT_PROFILES_PATH=str(profiles), PREFECT_PROFILE="solo") == "None False"
    assert found(PREFECT_PROFILES_PATH=str(profiles), PREFECT_API_URL="http://h:1/api") == "http://h:1/api False"
    assert found(PREFECT_PROFILES_PATH=str(tmp_path / "none.toml")) == "None False"  # Prefect's default: ephemeral


# --- Signals ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def long_folder(tmp_path_factory) -> Path:
    from fer_video.samples import make_clip

    path = tmp_path_factory.mktemp("cli_long")
    make_clip(path / "l1.mp4", seconds=40, width=640, height=360, fps=25)
    os.link(path / "l1.mp4", path / "l2.mp4")
    return path


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _interrupt(args: list, sig: int, to_group: bool, ready, env: dict | None = None):
    """Start the CLI in a session of its own, wait until `ready(stderr so far)`, send `sig` to the
    whole group (as a terminal does) or to the process; return (exit code, seconds to exit, stderr)."""
    import threading

    proc = subprocess.Popen([*cli_command(), *map(str, args)], cwd=REPO, env=env or _env(), text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while not ready("".join(chunks)):
            assert proc.poll() is None, f"ended before it was interrupted: {''.join(chunks)}"
            assert time.monotonic() < deadline, "never got ready"
            time.sleep(0.05)
        time.sleep(0.5)
        sent = time.monotonic()
        if to_group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        proc.wait(timeout=60)
        took = time.monotonic() - sent
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    seen, rest = "".join(chunks), ""
    deadline = time.monotonic() + 5
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _group_alive(proc.pid), "a child process outlived the command"
    return proc.returncode, took, seen + rest


def _one_line(stderr: str) -> None:
    lines = [line.strip() for line in stderr.replace("\r", "\n").splitlines()]
    errors = [line for line in lines if line.startswith("fer-video: error")]
    assert errors == ["fer-video: error: interrupted"], stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr


@pytest.mark.parametrize("sig, to_group, code", [(signal.SIGINT, True, 130), (signal.SIGTERM, False, 143)])
def test_annotate_stops_at_once_on_a_signal(sig, to_group, code, long_folder, tmp_path):
    out = tmp_path / "out"
    exit_code, took, stderr = _interrupt(["annotate", long_folder / "l1.mp4", "--out", out], sig, to_group,
                                         lambda seen: "analyse l1.mp4" in seen)
    assert exit_code == code, stderr
    assert took < 5, f"took {took:.1f} s to stop"
    _one_line(stderr)
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize("sig, to_group, code", [(signal.SIGINT, True, 130), (signal.SIGTERM, False, 143)])
def test_batch_stops_at_once_on_a_signal(sig, to_group, code, long_folder, tmp_path):
    """Two inputs at once in pool threads: both stop, their ffmpeg processes end, no temp files."""
    out = tmp_path / "out"
    exit_code, took, stderr = _interrupt(["batch", long_folder, "--out", out], sig, to_group,
                                         lambda seen: "2 at a time" in seen)
    assert exit_code == code, stderr
    assert took < 5, f"took {took:.1f} s to stop"
    _one_line(stderr)
    if out.exists():  # only the hidden lock files, which a rerun reuses
        assert [p.name for p in out.iterdir() if not p.name.endswith(".lock")] == []
        assert hidden_partials(out) == []


def test_a_signal_another_thread_receives_stops_the_main_thread_waiting_on_jobs():
    """The kernel hands a signal to any thread of the process, and Python runs its handler in the
    main thread only once that thread runs Python code again. A batch's main thread waits on its
    jobs: it must notice within a moment, not when the job it waits on ends. Here the signal goes
    to the job's thread itself (`pthread_kill`), whose job would run 10 s more."""
    script = textwrap.dedent("""
        import signal, threading, time
        from fer_video import interrupt
        from fer_video.batch import in_threads

        interrupt.handle_signals()
        started = threading.Event()

        def job(path, name, options, model_sha):
            started.set()
            interrupt.CANCELLED.wait(10)  # busy with frames, checking for a cancel between them
            interrupt.check()

        def send():
            started.wait()
            time.sleep(0.2)
            worker = next(t for t in threading.enumerate() if t.name.startswith("job"))
            signal.pthread_kill(worker.ident, signal.SIGINT)

        threading.Thread(target=send, daemon=True).start()
        sent = time.monotonic()
        try:
            list(in_threads(concurrency=1, job=job)([("a.mp4", "a")], None, "", 0))
        except KeyboardInterrupt:
            print(f"stopped {time.monotonic() - sent:.2f}", flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("stopped"), (done.stdout, done.stderr)
    assert float(done.stdout.split()[1]) < 2, done.stdout


def test_flow_run_stops_at_once_on_ctrl_c(long_folder, tmp_path):
    """--prefect (an ephemeral server): Ctrl-C to the group stops the flow run and the server,
    exit 130, one line, rather than a minute of ConnectError retries against a dead server."""
    out = tmp_path / "out"
    exit_code, took, stderr = _interrupt(["annotate", long_folder / "l1.mp4", "--out", out, "--prefect"],
                                         signal.SIGINT, True, lambda seen: "analyse l1.mp4" in seen)
    assert exit_code == 130, stderr
    assert took < 5, f"took {took:.1f} s to stop"
    _one_line(stderr)
    assert "ConnectError" not in stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_ctrl_c_during_shutdown_prints_no_exit_hook_traceback(folder, tmp_path):
    """Ctrl-C once the result is printed, while Prefect's exit hooks and the server's stop run."""
    out = tmp_path / "out"
    exit_code, took, stderr = _ctrl_c_after_result(folder / "a.mp4", out)
    assert "Exception ignored" not in stderr and "Traceback" not in stderr, stderr
    assert exit_code in (0, 130), stderr
    assert took < 5


def _ctrl_c_after_result(clip: Path, out: Path):
    proc = subprocess.Popen([*cli_command(), "annotate", str(clip), "--out", str(out), "--prefect", "--quiet"],
                            cwd=REPO, env=_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert "->" in line, line + proc.stderr.read()
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        return proc.returncode, time.monotonic() - sent, stderr
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


# --- Messages name the file and the problem ----------------------------------------------------------

def _timeline_folder(tmp_path: Path) -> Path:
    """A folder with one real timeline (annotated in this process, no Prefect)."""
    from fer_video.pipeline import AnnotateOptions, annotate
    from fer_video.samples import make_clip

    clip = make_clip(tmp_path / "in" / "t.mp4", seconds=0.2, **SMALL)
    out = tmp_path / "timelines"
    annotate(clip, AnnotateOptions(out_dir=out, video=False, progress=False))
    return out


@pytest.mark.parametrize("damage, says", [("garbage", "not a readable Parquet file"),
                                          ("metadata", "unreadable fer-video metadata")])
def test_a_broken_timeline_is_named(damage, says, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = _timeline_folder(tmp_path)
    bad = folder / "broken.parquet"
    if damage == "garbage":
        bad.write_bytes(b"not parquet at all\n" * 10)
    else:
        pq.write_table(pa.table({"x": [1]}).replace_schema_metadata({"fer_video": "{not json"}), bad)
    proc = cli("summary", folder)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fer-video: error: {bad}: ") and says in lines[0], lines


def test_a_full_disk_names_the_timeline_and_leaves_no_temp_file(tmp_path, monkeypatch):
    """ENOSPC half-way through writing the Parquet: the error names the file being written and
    the hidden temp file is gone."""
    import errno

    import pyarrow.parquet as pq

    def full_disk(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    from fer_video.pipeline import AnnotateOptions, analyse, probe, smooth, write
    from fer_video.samples import make_clip

    clip = make_clip(tmp_path / "t.mp4", seconds=0.2, **SMALL)
    options = AnnotateOptions(out_dir=tmp_path / "out", video=False, progress=False)
    analysis = analyse(probe(clip), options)
    faces = smooth(analysis.faces, options.smoothing)
    monkeypatch.setattr(pq, "write_table", full_disk)
    with pytest.raises(OSError) as caught:
        write(faces, analysis, options)
    assert str(tmp_path / "out" / "t.parquet") in str(caught.value), caught.value
    assert "No space left on device" in str(caught.value)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.fixture(scope="module")
def odd_inputs(tmp_path_factory) -> dict[str, Path]:
    from helpers import ffmpeg

    folder = tmp_path_factory.mktemp("odd_inputs")
    made = {"tiny video": folder / "tiny.mp4", "tiny image": folder / "tiny.png", "cover art": folder / "song.mp3"}
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=8x8:rate=10:duration=0.5", "-c:v", "libx264", "-pix_fmt", "yuv444p",
           made["tiny video"])
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=6x6:rate=1", "-frames:v", "1", made["tiny image"])
    cover = folder / "cover.png"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=1", "-frames:v", "1", cover)
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-i", cover, "-map", "0:a", "-map", "1:v",
           "-c:a", "libmp3lame", "-c:v", "png", "-disposition:v", "attached_pic", made["cover art"])
    return made


@pytest.mark.parametrize("kind, says", [("tiny video", "8x8 pixels: too small"), ("tiny image", "6x6 pixels: too small"),
                                        ("cover art", "no video stream (audio with cover art only)")])
def test_odd_inputs_say_what_they_are(kind, says, odd_inputs):
    from fer_video.errors import InputError
    from fer_video.video import probe

    with pytest.raises(InputError) as caught:
        probe(odd_inputs[kind])
    assert str(caught.value) == f"{odd_inputs[kind]}: {caught.value.problem}" and says in caught.value.problem


def test_a_fifo_is_not_an_empty_file_to_probe(tmp_path):
    from fer_video.errors import InputError
    from fer_video.video import probe

    os.mkfifo(tmp_path / "pipe.mp4")
    with pytest.raises(InputError) as caught:
        probe(tmp_path / "pipe.mp4")
    assert "FIFO" in caught.value.problem and "empty" not in caught.value.problem


def test_the_progress_line_is_no_reason():
    from fer_video.video.probe import _ffmpeg_reason

    text = ("[mov,mp4,m4a,3gp,3g2,mj2 @ 0x1] stream 0, offset 0x30: partial file\n"
            "frame=   12 fps=0.0 q=-0.0 Lsize=N/A time=00:00:00.48 bitrate=N/A speed=10.1x\n")
    assert _ffmpeg_reason(text) == "stream 0, offset 0x30: partial file"


def test_report_takes_track_like_plot(tmp_path):
    folder = _timeline_folder(tmp_path)
    plot = cli("plot", folder, "--video", "t", "--track", "1")
    report = cli("report", folder, "--video", "t", "--track", "1")
    assert plot.returncode == 0 and report.returncode == 0, plot.stderr + report.stderr
    assert (folder / "t.track1.timeline.png").exists() and (folder / "t.track1.report.html").exists()
    assert not (folder / "t.report.html").exists()


def test_direct_segments_in_threads_equal_one_after_another(tmp_path):
    """`annotate --segments 2` without Prefect analyses the segments in two threads: the same
    timeline as analysing them one after the other (helpers.analyse_segmented)."""
    import pandas as pd

    from fer_video.pipeline import AnnotateOptions, probe, smooth
    from helpers import analyse_segmented
    from fer_video.timeline.rows import rows_of
    from fer_video.samples import make_clip
    from helpers import read_timeline

    clip = make_clip(tmp_path / "seg.mp4", seconds=5.0, **SMALL)
    proc = cli("annotate", clip, "--out", tmp_path / "out", "--segments", "2", "--no-video", "--quiet")
    assert proc.returncode == 0, proc.stderr
    got, _ = read_timeline(tmp_path / "out" / "seg.parquet")
    options = AnnotateOptions(segments=2, video=False, progress=False)
    expected = rows_of(smooth(analyse_segmented(probe(clip), options).faces, options.smoothing), "seg", clip)
    assert len(got) == len(expected) > 0
    pd.testing.assert_series_equal(got["track_id"], expected["track_id"], check_names=False)
    pd.testing.assert_series_equal(got["frame_index"], expected["frame_index"], check_names=False)


# --- How a failure reads -----------------------------------------------------------------------

def test_every_failure_reads_as_one_line_naming_the_file():
    """One formatter for the CLI, the batch's report and Prefect's states: messages that libraries
    wrap over several lines (pyarrow, DuckDB, ffmpeg) give their first line."""
    from fer_video.errors import InputError, one_line, problem_of

    wrapped = RuntimeError("Invalid: Parquet magic bytes not found\n\nIn ../src/arrow/file.cc:42")
    assert one_line(wrapped, "a.mp4") == "a.mp4: RuntimeError: Invalid: Parquet magic bytes not found"
    assert problem_of(wrapped) == "RuntimeError: Invalid: Parquet magic bytes not found"
    assert one_line(InputError("b.mp4", "no video stream\n(ffmpeg said so)"), "ignored.mp4") == "b.mp4: no video stream"
    assert one_line(ValueError()) == "ValueError"
    assert one_line(KeyError("k"), "c.mp4") == "c.mp4: KeyError: 'k'"


def test_an_input_s_failure_is_one_line_with_the_verbose_hint(capsys):
    from fer_video.cli.annotate import report_failure

    report_failure("a.mp4", RuntimeError("first\nsecond"), verbose=False)
    assert capsys.readouterr().err.splitlines() == [
        "fer-video: error: a.mp4: RuntimeError: first (--verbose for details)"]


def test_demo_declares_what_the_prefect_path_reads():
    """`demo --prefect` / `--workers` go through `_annotate`'s Prefect branch, which reads
    --segments; demo once lacked it and failed there with AttributeError."""
    from fer_video.cli import build_parser

    for command in ("annotate x.mp4", "demo"):
        args = build_parser().parse_args([*command.split(), "--workers", "2"])
        assert args.segments == 1 and args.workers == 2, command


def test_the_grace_timer_and_the_main_thread_exiting_together_still_print_the_line():
    """The grace timer and the main thread may both reach `hard_exit` at about 1 s after the
    signal. The second must not `os._exit` while the first is between deciding to announce and
    writing the line: the command would exit 130 with no word of why."""
    script = textwrap.dedent("""
        import sys, threading, time
        from fer_video import interrupt

        class SlowFlush:  # widens the window between deciding to announce and writing
            def __init__(self, stream):
                self.stream = stream
            def write(self, text):
                return self.stream.write(text)
            def flush(self):
                time.sleep(0.5)
                self.stream.flush()
            def isatty(self):
                return False

        sys.stderr = SlowFlush(sys.stderr)
        threading.Thread(target=interrupt.hard_exit, args=(130,)).start()
        time.sleep(0.1)
        interrupt.hard_exit(130)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 130, done.stderr
    assert done.stderr.splitlines() == ["fer-video: error: interrupted"], done.stderr


def test_a_hard_exit_stuck_in_its_flush_does_not_keep_the_process_alive():
    """The first `hard_exit` blocks flushing stderr (a full pipe nobody reads): the second, the
    grace timer's, waits a bounded time, then exits with the line itself."""
    script = textwrap.dedent("""
        import sys, threading, time
        from fer_video import interrupt

        class StuckFlush:
            def write(self, text):
                return len(text)
            def flush(self):
                time.sleep(600)
            def isatty(self):
                return False

        sys.stderr = StuckFlush()
        threading.Thread(target=interrupt.hard_exit, args=(130,), daemon=True).start()
        time.sleep(0.1)
        interrupt.hard_exit(130)
    """)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 130, done.stderr
    assert done.stderr.splitlines() == ["fer-video: error: interrupted"], done.stderr
    assert time.monotonic() - started < 10


def test_a_signal_another_thread_receives_stops_a_flow_waiting_on_its_segments():
    """The same for a video's segments as Prefect tasks (`annotate --prefect --segments N`): the
    flow's main thread waits on their futures, and the signal goes to a task's thread."""
    script = textwrap.dedent("""
        import signal, threading, time
        from prefect import flow, task
        from fer_video import interrupt
        from flows.annotate import results

        interrupt.handle_signals()
        started = threading.Event()
        worker = []

        @task
        def segment():
            worker.append(threading.get_ident())
            started.set()
            interrupt.CANCELLED.wait(10)  # busy with frames, checking for a cancel between them
            interrupt.check()

        @flow
        def segments():
            return results([segment.submit()])

        def send():
            started.wait()
            time.sleep(0.2)
            sent.append(time.monotonic())
            signal.pthread_kill(worker[0], signal.SIGINT)

        sent = []
        threading.Thread(target=send, daemon=True).start()
        try:
            segments()
        except KeyboardInterrupt:
            print(f"stopped {time.monotonic() - sent[0]:.2f}", flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=_env())
    assert done.stdout.startswith("stopped"), (done.stdout, done.stderr[-2000:])
    assert float(done.stdout.split()[1]) < 5, done.stdout  # 0.8 s here (Prefect records the crash); 10 s unfixed


@pytest.mark.parametrize("preset, expected", [(None, "1"), ("3", "3")])
def test_numpy_s_blas_runs_on_one_thread_unless_the_user_says_otherwise(preset, expected):
    """The command sets OPENBLAS_NUM_THREADS=1 before NumPy is imported (OpenBLAS's pool spins
    beside the busy frame threads), unless the user set it."""
    script = ("import os, sys\n"
              "from fer_video.cli import _environment\n"
              "assert 'numpy' not in sys.modules\n"
              "_environment(False)\n"
              "print(os.environ['OPENBLAS_NUM_THREADS'])\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if preset:
        env["OPENBLAS_NUM_THREADS"] = preset
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected, done.stdout

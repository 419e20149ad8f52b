"""`fer-video query | summary | plot | report`: questions to a folder of timelines.

A folder written by `annotate` (or `batch`) is one dataset: every timeline in it (`*.parquet`
with fer-video's metadata; other Parquet files are skipped with a warning). Errors
(missing or empty folder, bad SQL, unknown video) are raised as ValueError / FileNotFoundError
with a one-line message, which `fer_video.cli.main` prints as `fer-video: error: ...` (exit 2).
"""

from __future__ import annotations

import argparse
import sys

from fer_video.cli.common import add
from fer_video.options import VERBOSE

FORMATS = ("table", "csv", "json", "parquet")


def _output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="table (aligned, the default), csv, json (array of records) or parquet (needs --output)")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")


def cmd_query(args) -> int:
    from fer_video.timeline.query import query, write_result

    sql = sys.stdin.read() if args.sql == "-" else args.sql
    result = query(args.folder, sql, allow_files=args.allow_files)
    _written(write_result(result, args.format, args.output, dataset=args.folder))
    return 0


def cmd_summary(args) -> int:
    from fer_video.timeline.query import write_result
    from fer_video.timeline.summary import format_summary, summary

    table = summary(args.folder, by=args.by, video=args.video, track=args.track, start=args.start, end=args.end)
    _written(write_result(table, args.format, args.output, table=format_summary, dataset=args.folder))
    return 0


def _videos(args) -> list[str]:
    from fer_video.timeline.read import load_metadata

    if args.video:
        return args.video
    if args.track is not None:
        raise ValueError("--track needs --video")
    videos = sorted(load_metadata(args.folder))
    if not videos:
        raise ValueError(f"{args.folder}: no timelines with fer-video metadata")
    return videos


def cmd_plot(args) -> int:
    from fer_video.timeline.plot import plot_video

    for video in _videos(args):
        paths = plot_video(args.folder, video, track=args.track, out_dir=args.out, dpi=args.dpi)
        print(f"{video}: {paths['timeline']} {paths['shares']}")
    return 0


def cmd_report(args) -> int:
    from fer_video.timeline.report import report_video

    for video in _videos(args):
        print(f"{video}: {report_video(args.folder, video, out_dir=args.out, dpi=args.dpi, track=args.track)}")
    return 0


def _written(path) -> None:
    if path is not None:
        print(f"wrote {path}", file=sys.stderr)


def register(sub) -> None:
    """Add the timeline commands to `fer-video`'s subparsers."""
    p = sub.add_parser(
        "query", help="SQL over a folder of timelines (DuckDB; the table is `timeline`)",
        description="Run SQL over every *.parquet in FOLDER with DuckDB. The view `timeline` has one "
        "row per frame and face (video_id, frame_index, timestamp_s, track_id, box, raw_* and p_* "
        "probabilities, label, confidence, and frame_duration_s: how long the frame shows, from its "
        "timestamp to the next analysed frame's, so time on screen is sum(frame_duration_s)); "
        "`videos` has one row per video with its metadata (fps, stride, frame_step_s = stride / fps, "
        "duration_s, width, height, model_name, ...). "
        "Only one read-only query, without file access, unless --allow-files.",
        epilog="example: fer-video query out \"SELECT video_id, track_id, count(*) AS frames FROM timeline "
        "WHERE label = 'happy' GROUP BY ALL ORDER BY frames DESC\"")
    p.add_argument("folder", help="folder of timelines (or one .parquet file)")
    p.add_argument("sql", help="the query; - reads it from stdin")
    p.add_argument("--allow-files", action="store_true",
                   help="let the SQL read and write files, run several statements and change settings "
                   "(default: one read-only query over the timelines, no file access)")
    _output_args(p)
    add(p, VERBOSE)
    p.set_defaults(func=cmd_query)

    p = sub.add_parser(
        "summary", help="per track (or per video): time on screen, dominant emotion, shares, changes, peaks",
        description="Summarise a folder of timelines per (video, track), or per video with --by video: "
        "time on screen (from the frames' own timestamps: each analysed frame lasts until the next), "
        "first and last time seen, dominant smoothed "
        "label, share of time in each emotion, number of changes of the smoothed label, and the time "
        "and probability of each emotion's strongest moment.")
    p.add_argument("folder", help="folder of timelines (or one .parquet file)")
    p.add_argument("--by", choices=["track", "video", "person"], default="track",
                   help="one row per track (default), per video, or per person (over all videos once linked)")
    p.add_argument("--video", action="append", help="only this video id (repeatable)")
    p.add_argument("--track", type=int, action="append", help="only this track id (repeatable)")
    p.add_argument("--start", type=float, help="only from this time, seconds (inclusive)")
    p.add_argument("--end", type=float, help="only before this time, seconds (exclusive)")
    _output_args(p)
    add(p, VERBOSE)
    p.set_defaults(func=cmd_summary)

    def plot_args(p, what):
        p.add_argument("folder", help="folder of timelines (or one .parquet file)")
        p.add_argument("--video", action="append", help="video id (the input's file stem; repeatable; default: all)")
        p.add_argument("--out", help=f"where the {what} go (default: FOLDER)")
        p.add_argument("--dpi", type=int, default=100, help="pixels per inch of the plots (default 100)")
        p.add_argument("--track", type=int, action="append", help="only this track (repeatable; needs --video)")
        add(p, VERBOSE)

    p = sub.add_parser(
        "plot", help="PNG plots of a video: smoothed probabilities over time per track, share of each emotion",
        description="Write <video>.timeline.png (smoothed probabilities per track over time, in seconds, "
        "label changes marked) and <video>.shares.png (share of each emotion per track); with --track, "
        "<video>.track<N>.*.png.")
    plot_args(p, "PNGs")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser(
        "report", help="an HTML report per video: annotated video, summary tables and plots",
        description="Write <video>.report.html: a link to (and player for) the annotated MP4, the "
        "per-track summary, both plots embedded, and the strongest moment of each emotion; with --track, "
        "<video>.track<N>.report.html.")
    plot_args(p, "reports")
    p.set_defaults(func=cmd_report)

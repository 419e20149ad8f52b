"""A self-contained HTML report per video: the annotated video (linked, and played in place), the
per-track summary, the strongest moment of each emotion and both plots (embedded as PNG data URIs,
so the one HTML file can be mailed or archived alone; only the video stays a link)."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

import pandas as pd

from fer_video.draw import EMOTION_COLORS_BGR
from fer_video.expression.labels import EMOTIONS
from fer_video.outputs import IMAGE_WRITERS, atomic_path, media_names
from fer_video.timeline.schema import TimelineMetadata


def _rgb(emotion: str, alpha: float | None = None) -> str:
    b, g, r = EMOTION_COLORS_BGR[emotion]
    return f"rgb({r} {g} {b})" if alpha is None else f"rgb({r} {g} {b} / {alpha:.2f})"


def annotated_media(folder: Path, video_id: str, source: str | Path | None = None) -> Path | None:
    """The annotated MP4 (or image) that `annotate` wrote beside the timeline, if there is one.

    `source` is the input's path: annotating into the input's own folder writes
    `<stem>.annotated.mp4`, and `<stem>.mp4` there is the input itself, not an output."""
    candidates = [folder / filename for filename in media_names(video_id)]
    original = Path(source).resolve() if source else None
    return next((p for p in candidates if p.is_file() and p.resolve() != original), None)


def _summary_table(summary: pd.DataFrame) -> str:
    has_person = "person" in summary
    head = ("<tr><th>track</th>" + ("<th>person</th>" if has_person else "")
            + "<th>on screen</th><th>seen</th><th>dominant</th><th>label changes</th>"
            + "".join(f'<th class="emotion"><span class="swatch" style="background:{_rgb(e)}"></span>{e}</th>'
                      for e in EMOTIONS) + "</tr>")
    body = []
    for r in summary.itertuples(index=False):
        shares = "".join(
            f'<td class="num" style="background:{_rgb(e, 0.85 * getattr(r, f"share_{e}"))}">'
            f'{100 * getattr(r, f"share_{e}"):.0f}%</td>' for e in EMOTIONS)
        body.append(
            f"<tr><td class=\"num\">{int(r.track_id)}</td>"
            + (f"<td class=\"person\">{html.escape(str(r.person))}</td>" if has_person else "")
            + f"<td class=\"num\">{r.time_on_screen_s:.2f} s</td>"
            f"<td class=\"num\">{r.first_s:.2f}–{r.last_s:.2f} s</td>"
            f'<td><span class="swatch" style="background:{_rgb(r.dominant)}"></span>{html.escape(r.dominant)}</td>'
            f"<td class=\"num\">{int(r.changes)}</td>{shares}</tr>")
    return f'<table id="summary"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'


def _peaks_table(summary: pd.DataFrame) -> str:
    head = "<tr><th>track</th>" + "".join(f"<th>{e}</th>" for e in EMOTIONS) + "</tr>"
    body = []
    for r in summary.itertuples(index=False):
        cells = "".join(
            f'<td class="num">{getattr(r, f"peak_{e}_s"):.2f} s <small>({getattr(r, f"peak_{e}_p"):.2f})</small></td>'
            for e in EMOTIONS)
        body.append(f'<tr><td class="num">{int(r.track_id)}</td>{cells}</tr>')
    return f'<table id="peaks"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'


def _media_section(media: Path | None, report_dir: Path) -> str:
    if media is None:
        return ('<p class="missing">No annotated video beside this timeline (it is written by '
                "<code>fer-video annotate</code> without <code>--no-video</code>).</p>")
    href = html.escape(Path(os.path.relpath(media, report_dir)).as_posix(), quote=True)
    name = html.escape(media.name)
    if media.suffix.lower() in IMAGE_WRITERS:
        player = f'<img class="media" src="{href}" alt="annotated image">'
    else:
        player = f'<video class="media" controls preload="metadata" src="{href}"></video>'
    return f'{player}<p><a id="annotated-video" href="{href}">{name}</a> (annotated)</p>'


CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1240px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.1em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { padding: 4px 9px; border-bottom: 1px solid #e4e4e4; text-align: left; }
th { background: #f4f4f4; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.35em; border-radius: 2px; }
img.plot { max-width: 100%; height: auto; border: 1px solid #eee; }
.media { max-width: 100%; max-height: 540px; background: #000; }
.missing { color: #a33; }
footer { color: #888; margin-top: 3em; font-size: 13px; }
"""


def report_html(video_id: str, summary: pd.DataFrame, metadata: TimelineMetadata | None,
                  timeline_png: bytes, shares_png: bytes, media: Path | None, report_dir: Path) -> str:
    """The report's HTML text."""
    from fer_video import __version__

    def img(data: bytes, alt: str, ident: str) -> str:
        return (f'<img class="plot" id="{ident}" alt="{html.escape(alt, quote=True)}" '
                f'src="data:image/png;base64,{base64.b64encode(data).decode()}">')

    meta = ""
    if metadata is not None:
        duration = f"{metadata.duration_s:.2f} s" if metadata.duration_s else "?"
        meta = html.escape(
            f"{metadata.source_path} · {metadata.width}x{metadata.height} · {metadata.fps:g} fps · {duration} · "
            f"stride {metadata.stride} · model {metadata.model_name} {metadata.model_version} · "
            f"detector {metadata.detector} · smoothing {metadata.smoothing}")
    title = html.escape(f"{video_id}: facial expressions")
    tracks = (f"{len(summary)} face track{'s' if len(summary) != 1 else ''}, "
              f"{summary['time_on_screen_s'].sum():.2f} s of faces on screen in all") if len(summary) else "no faces found"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{CSS}</style>
</head>
<body>
<h1>{title}</h1>
<p class="meta">{meta}</p>
<h2>Annotated video</h2>
{_media_section(media, report_dir)}
<h2>Per face</h2>
<p>{html.escape(tracks)}. Time on screen adds up how long each analysed frame a face is in shows (to the next analysed frame, by the frames' own timestamps);
shares are of that time, by the smoothed label.</p>
{_summary_table(summary)}
<h2>Smoothed probabilities over time</h2>
{img(timeline_png, f"{video_id}: smoothed expression probabilities per face over time", "timeline-plot")}
<h2>Share of each expression</h2>
{img(shares_png, f"{video_id}: share of time in each expression per face", "shares-plot")}
<h2>Strongest moment of each expression</h2>
<p>Time of the highest smoothed probability of each expression per face, and that probability.</p>
{_peaks_table(summary)}
<footer>fer-video {html.escape(__version__)}</footer>
</body>
</html>
"""


def report_video(path_or_folder: str | Path, video: str, out_dir: str | Path | None = None,
                 dpi: int = 100, track=None) -> Path:
    """Write `<out_dir>/<video>.report.html` (default: beside the timeline; of some tracks only:
    `<video>.track<N>.report.html`, as `plot` names its PNGs) and return its path."""
    from fer_video.timeline.plot import plot_names, png_bytes, shares_figure, timeline_figure, video_rows
    from fer_video.timeline.read import timeline_files

    rows, meta, summary = video_rows(path_or_folder, video, track)
    source = Path(path_or_folder)
    folder = source if source.is_dir() else timeline_files(source)[0].parent
    out = Path(out_dir) if out_dir is not None else folder
    out.mkdir(parents=True, exist_ok=True)
    text = report_html(
        video, summary, meta,
        png_bytes(timeline_figure(rows, meta, summary, dpi), dpi),
        png_bytes(shares_figure(summary, video, dpi), dpi),
        annotated_media(folder, video, meta.source_path if meta is not None else None), out.resolve(),
    )
    path = out / plot_names(video, track)["timeline"].replace(".timeline.png", ".report.html")
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")
    return path

"""Plots of a video's timeline: smoothed probabilities over time per track, and the share of each
emotion per track. Colours are the annotated video's (`fer_video.draw.EMOTION_COLORS_BGR`).

Figures are drawn with matplotlib's Agg canvas (no display, no pyplot state) at a size fixed by
the number of tracks, so that the PNG's pixel size is known in advance: see `timeline_size_px`
and `shares_size_px`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from fer_video.draw import emotion_colors_rgb
from fer_video.expression.labels import EMOTIONS
from fer_video.outputs import atomic_path
from fer_video.timeline.schema import TimelineMetadata

DPI = 100
MAX_CHANGE_LABELS = 24  # per track; past that the changes are marked without their names


def _timeline_inches(n_tracks: int) -> tuple[float, float]:
    return 12.0, 1.5 + 2.5 * max(1, n_tracks)  # multiples of 0.5: exact pixel sizes at any even dpi


def _shares_inches(n_tracks: int) -> tuple[float, float]:
    return 10.0, 2.0 + 0.5 * max(1, n_tracks)


def timeline_size_px(n_tracks: int, dpi: int = DPI) -> tuple[int, int]:
    """(width, height) in pixels of `plot_timeline`'s PNG for `n_tracks` tracks."""
    w, h = _timeline_inches(n_tracks)
    return int(w * dpi), int(h * dpi)


def shares_size_px(n_tracks: int, dpi: int = DPI) -> tuple[int, int]:
    """(width, height) in pixels of `plot_shares`'s PNG for `n_tracks` tracks."""
    w, h = _shares_inches(n_tracks)
    return int(w * dpi), int(h * dpi)


def _save(fig, path: Path, dpi: int) -> Path:
    path = Path(path)
    with atomic_path(path) as temp:
        fig.savefig(temp, format="png", dpi=dpi, facecolor="white")
    return path


@functools.cache
def _drawable_characters() -> frozenset[int]:
    """Every character the figures' font (matplotlib's default, DejaVu Sans) can draw."""
    from matplotlib import font_manager, ft2font

    return frozenset(ft2font.FT2Font(font_manager.findfont(font_manager.FontProperties())).get_charmap())


def _drawable(text: str) -> str:
    """`text` with each character the font cannot draw shown as '?', so a file or person name
    in a script the font lacks (CJK) gives a readable title, not a warning per glyph."""
    drawable = _drawable_characters()
    return "".join(c if c.isspace() or ord(c) in drawable else "?" for c in str(text))


def _subtitle(metadata: TimelineMetadata | None) -> str:
    if metadata is None:
        return ""
    parts = [f"{metadata.width}x{metadata.height}", f"{metadata.fps:g} fps"]
    if metadata.stride > 1:
        parts.append(f"every {metadata.stride}th frame analysed")
    parts += [f"model {metadata.model_name or '?'}", f"detector {metadata.detector}",
              f"smoothing {metadata.smoothing}"]
    return " · ".join(parts)


def _runs(times: np.ndarray, labels: np.ndarray, step: float):
    """Runs of equal label among consecutive analysed frames: (start, end, label) with end the
    last frame's time plus one frame step; a gap in the track ends a run."""
    runs = []
    start = 0
    for i in range(1, len(times) + 1):
        if i == len(times) or labels[i] != labels[start] or times[i] - times[i - 1] > 1.5 * step:
            runs.append((times[start], times[i - 1] + step, labels[start]))
            start = i
    return runs


def plot_timeline(rows: pd.DataFrame, path: str | Path, metadata: TimelineMetadata | None = None,
                  summary: pd.DataFrame | None = None, dpi: int = DPI) -> Path:
    """`timeline_figure` as a PNG at `path` (written through `fer_video.outputs.atomic_path`)."""
    return _save(timeline_figure(rows, metadata, summary, dpi), path, dpi)


def plot_shares(summary: pd.DataFrame, path: str | Path, video_id: str = "", dpi: int = DPI) -> Path:
    """`shares_figure` as a PNG at `path`."""
    return _save(shares_figure(summary, video_id, dpi), path, dpi)


def png_bytes(fig, dpi: int = DPI) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def timeline_figure(rows: pd.DataFrame, metadata: TimelineMetadata | None = None,
                    summary: pd.DataFrame | None = None, dpi: int = DPI):
    """One panel per track of one video's rows: the seven smoothed probabilities over time (s),
    a band of the smoothed label above them, and each change of label marked with a dashed
    line and the new label's name."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from fer_video.timeline.summary import frame_step, summary_of

    colors = emotion_colors_rgb()
    video_ids = rows["video_id"].unique() if len(rows) else []
    video_id = video_ids[0] if len(video_ids) else (Path(metadata.source_path).stem if metadata else "video")
    if summary is None:
        summary = summary_of(rows, {video_id: metadata} if metadata else {})
    tracks = sorted(rows["track_id"].unique()) if len(rows) else []
    step = frame_step(metadata)
    if not np.isfinite(step):
        diffs = np.diff(np.sort(rows["frame_index"].unique())) if len(rows) else []
        step = float(np.median(diffs)) if len(diffs) else 1.0  # no metadata: frames, roughly
    end = max([metadata.duration_s or 0.0] if metadata else [0.0])
    if len(rows):
        end = max(end, float(rows["timestamp_s"].max()) + step)
    end = end or 1.0

    fig = Figure(figsize=_timeline_inches(len(tracks)), dpi=dpi, layout="constrained")
    fig.suptitle(f"{_drawable(video_id)}: smoothed expression probabilities per face", fontsize=13, fontweight="bold")
    axes = fig.subplots(max(1, len(tracks)), 1, sharex=True, squeeze=False)[:, 0]
    if not tracks:
        axes[0].text(0.5, 0.5, "no faces found in this video", ha="center", va="center",
                     transform=axes[0].transAxes, fontsize=14, color="0.4")
        axes[0].set_yticks([])
    by_track = summary.set_index("track_id") if len(summary) else None
    for ax, track in zip(axes, tracks):
        track_rows = rows[rows["track_id"] == track].sort_values("frame_index")
        times = track_rows["timestamp_s"].to_numpy()
        labels = track_rows["label"].astype(str).to_numpy()
        # Each analysed frame holds until the next (steps), and the last one for one frame step;
        # the line breaks where the face was not seen.
        pieces = np.split(np.arange(len(times)), np.flatnonzero(np.diff(times) > 1.5 * step) + 1)
        for e in EMOTIONS:
            p = track_rows[f"p_{e}"].to_numpy(np.float64)
            t_parts, p_parts = [], []
            for piece in pieces:
                t_parts += [times[piece], [times[piece[-1]] + step], [np.nan]]
                p_parts += [p[piece], [p[piece[-1]]], [np.nan]]
            ax.plot(np.concatenate(t_parts), np.concatenate(p_parts), color=colors[e], linewidth=1.6,
                    drawstyle="steps-post", label=e)
        for start, stop, label in _runs(times, labels, step):
            ax.axvspan(start, stop, ymin=1.02 / 1.14, ymax=1.12 / 1.14, color=colors[label], linewidth=0)
        changes = [i for i in range(1, len(labels)) if labels[i] != labels[i - 1]]
        for i in changes:
            ax.axvline(times[i], color=colors[labels[i]], linestyle="--", linewidth=1.1, alpha=0.8)
            if len(changes) <= MAX_CHANGE_LABELS:
                ax.annotate(labels[i], (times[i], 0.985), xytext=(3, 0), textcoords="offset points",
                            fontsize=8, ha="left", va="top", color="0.15",
                            bbox=dict(boxstyle="round,pad=0.15", fc="white", ec=colors[labels[i]], alpha=0.85))
        ax.set_ylim(0, 1.14)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.set_ylabel("probability")
        ax.grid(True, axis="y", color="0.9", linewidth=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        info = by_track.loc[track] if by_track is not None and track in by_track.index else None
        text = f"track {track}"
        if info is not None and "person" in info:
            text += f" ({_drawable(info['person'])})"
        if info is not None:
            dominant = info["dominant"]
            text += (f"  ·  on screen {info['time_on_screen_s']:.2f} s"
                     f" ({info['first_s']:.2f}–{info['last_s']:.2f} s)"
                     f"  ·  mostly {dominant} ({info['share_' + dominant]:.0%})"
                     f"  ·  {int(info['changes'])} label change{'s' if info['changes'] != 1 else ''}")
        ax.set_title(text, loc="left", fontsize=10.5)
    axes[-1].set_xlim(0, end)
    axes[-1].set_xlabel("time (s)")
    handles = [Line2D([], [], color=colors[e], linewidth=2.2, label=e) for e in EMOTIONS]
    handles += [Patch(color="0.55", label="smoothed label (band)"),
                Line2D([], [], color="0.3", linestyle="--", linewidth=1.1, label="label change")]
    fig.legend(handles=handles, loc="outside right upper", frameon=False, fontsize=9.5, title="emotion")
    fig.supxlabel(_subtitle(metadata), fontsize=8.5, color="0.4", x=0.99, ha="right")
    return fig


def shares_figure(summary: pd.DataFrame, video_id: str = "", dpi: int = DPI):
    """Horizontal stacked bars, one per track: the share of its time on screen in each emotion."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    colors = emotion_colors_rgb()
    summary = summary.sort_values("track_id", ascending=False)  # track 1 at the top
    fig = Figure(figsize=_shares_inches(len(summary)), dpi=dpi, layout="constrained")
    ax = fig.subplots()
    fig.suptitle(f"{_drawable(video_id)}: share of time on screen in each expression, per face", fontsize=13,
                 fontweight="bold")
    names = [f"track {int(r.track_id)}" + (f" ({_drawable(r.person)})" if "person" in summary else "")
             + f"\n{r.time_on_screen_s:.2f} s" for r in summary.itertuples()]
    left = np.zeros(len(summary))
    for e in EMOTIONS:
        share = summary[f"share_{e}"].to_numpy(np.float64) * 100
        ax.barh(names, share, left=left, color=colors[e], label=e, height=0.62, edgecolor="white", linewidth=0.6)
        for y, (x0, w) in enumerate(zip(left, share)):
            if w >= 6:
                ax.text(x0 + w / 2, y, f"{w:.0f}%", ha="center", va="center", fontsize=9, color="0.1")
        left += share
    if not len(summary):
        ax.text(50, 0.5, "no faces found in this video", ha="center", va="center", fontsize=13, color="0.4")
        ax.set_ylim(0, 1)
        ax.set_yticks([])
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of the track's time on screen (%)")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.legend(loc="outside lower center", ncol=len(EMOTIONS), frameon=False, fontsize=9.5,
               handles=[Patch(color=colors[e], label=e) for e in EMOTIONS])
    return fig


def plot_names(video_id: str, track=None) -> dict[str, str]:
    """File names of the two plots of a video (and of a choice of tracks)."""
    suffix = ""
    if track is not None:
        tracks = [track] if isinstance(track, (int, np.integer)) else list(track)
        suffix = ".track" + "-".join(str(int(t)) for t in tracks)
    return {"timeline": f"{video_id}{suffix}.timeline.png", "shares": f"{video_id}{suffix}.shares.png"}


def plot_video(path_or_folder: str | Path, video: str, track=None, out_dir: str | Path | None = None,
               dpi: int = DPI) -> dict[str, Path]:
    """Both plots of one video of a folder (optionally only some tracks), written to `out_dir`
    (default: the folder itself) as `<video>[.track<N>].timeline.png` and `.shares.png`."""
    from fer_video.timeline.read import timeline_files

    rows, meta, summary = video_rows(path_or_folder, video, track)
    source = Path(path_or_folder)
    out = Path(out_dir) if out_dir is not None else (source if source.is_dir() else timeline_files(source)[0].parent)
    names = plot_names(video, track)
    return {
        "timeline": plot_timeline(rows, out / names["timeline"], meta, summary, dpi),
        "shares": plot_shares(summary, out / names["shares"], video, dpi),
    }


def video_rows(path_or_folder: str | Path, video: str, track=None):
    """(rows, metadata, per-track summary) of one video of a folder; ValueError if the folder has
    no such video, or the video no such track."""
    from fer_video.timeline.read import load, load_metadata, require_tracks
    from fer_video.timeline.summary import summary_of

    metadata = load_metadata(path_or_folder)
    rows = load(path_or_folder, video=video, track=track)
    if video not in metadata and not len(rows):
        raise ValueError(f"no video {video!r} in {path_or_folder} (videos: {', '.join(sorted(metadata)) or 'none'})")
    require_tracks(path_or_folder, video, track)
    meta = metadata.get(video)
    return rows, meta, summary_of(rows, {video: meta} if meta else {})

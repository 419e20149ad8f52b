"""Long videos in time segments: where each segment starts and ends, and how their analyses are
stitched into the one a single pass would have made. `annotate`'s `Stages` decides how the
segments run (threads here, the flow's task runner in flows/)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fer_video.faces.record import Faces
from fer_video.jobs import AnnotateOptions
from fer_video.pipeline.analyse import Analysis
from fer_video.video import MediaInfo

if TYPE_CHECKING:
    import pandas as pd


OVERLAP_SECONDS = 1.0  # segments overlap by this much, so tracks can be matched across the seam


def plan_segments(info: MediaInfo, options: AnnotateOptions) -> list[tuple[int, int | None]]:
    """(first, last) frame ranges: `options.segments` equal parts, each but the first starting
    OVERLAP_SECONDS early; all starts on the stride grid, so frames analysed are those of one pass."""
    total = info.expected_frames or 0
    n = max(1, min(options.segments, total // max(1, round(float(info.fps) * 2 * OVERLAP_SECONDS)) or 1))
    if info.is_image or n == 1:
        return [(0, None)]
    stride = options.stride
    overlap = -(-round(float(info.fps) * OVERLAP_SECONDS) // stride) * stride
    bounds = [round(k * total / n) // stride * stride for k in range(n)]
    ranges = []
    for k, start in enumerate(bounds):
        last = bounds[k + 1] - 1 if k + 1 < n else None
        ranges.append((max(0, start - overlap) if k else 0, last))
    return ranges


def stitch(parts: list[Analysis], ranges: list[tuple[int, int | None]]) -> Analysis:
    """Join segment analyses into one, as a single pass would have made it.

    Each segment's tracker started afresh, so its track ids are its own. In the overlap both
    segments saw the same frames: a later segment's track takes the id of the earlier track
    whose boxes it overlaps (IoU > 0.5) in most of those frames; tracks that are new get the next
    ids in order of appearance. The overlap's faces are kept from the earlier segment, whose
    tracker was already warm there.
    """
    import pandas as pd
    from fer_video.faces.assign import linear_sum_assignment

    from fer_video.faces.record import box_iou

    from fer_video.persons.stage import join_chips, renumber_chips

    joined = parts[0].faces
    chips = [parts[0].face_chips]
    times = [parts[0].frame_times]
    for part, (first, _), (_, prev_last) in zip(parts[1:], ranges[1:], ranges[:-1]):
        boundary = prev_last + 1
        earlier, later = _placed(joined), _placed(part.faces)
        previous = earlier[(earlier["frame_index"] >= first) & (earlier["frame_index"] < boundary)]
        seam = later[later["frame_index"] < boundary]
        old_ids = np.sort(previous["track_id"].unique())
        new_ids = np.sort(later["track_id"].unique())
        votes = np.zeros((len(new_ids), len(old_ids)))
        for frame_index, here in seam.groupby("frame_index"):
            there = previous[previous["frame_index"] == frame_index]
            if len(there) == 0:
                continue
            iou = box_iou(here[["x", "y", "w", "h"]].to_numpy(), there[["x", "y", "w", "h"]].to_numpy())
            for i, j in zip(*np.nonzero(iou > 0.5)):
                votes[np.searchsorted(new_ids, here["track_id"].iat[i]),
                      np.searchsorted(old_ids, there["track_id"].iat[j])] += 1
        mapping = {}
        if votes.size:
            for r, c in zip(*linear_sum_assignment(-votes)):
                seen_in_seam = (seam["track_id"] == new_ids[r]).sum()
                if votes[r, c] > 0 and votes[r, c] >= 0.5 * seen_in_seam:
                    mapping[new_ids[r]] = old_ids[c]
        after = part.faces[part.faces.frame_index >= boundary]
        next_id = int(joined.track_ids.max()) + 1 if len(joined) else 1
        # In order of appearance; ties go by the segment's own ids, which the tracker gave left
        # to right, as a single pass would.
        order = np.lexsort((after.track_ids, after.frame_index))
        for track in pd.unique(after.track_ids[order]):
            if track not in mapping:
                mapping[track] = next_id
                next_id += 1
        renumbered = np.array([mapping[t] for t in after.track_ids], np.int64).reshape(len(after))
        joined = Faces.concat([joined, after.with_(track_ids=renumbered)])
        chips.append(renumber_chips(part.face_chips, mapping))
        times.append(None if part.frame_times is None else part.frame_times[part.frame_times.index >= boundary])
    last = parts[-1]
    return Analysis(last.info, last.name, joined, last.frames_decoded, last.detector,
                    last.model_name, last.model_version, last.model_sha256, frames_expected=last.frames_expected,
                    warnings=list(dict.fromkeys(w for p in parts for w in p.warnings)),
                    face_chips=join_chips(chips),
                    frame_times=None if any(t is None for t in times) else pd.concat(times), end_s=last.end_s,
                    classified=sum(p.classified for p in parts))  # the overlaps' faces counted twice: they were classified twice


def _placed(faces: Faces) -> pd.DataFrame:
    """Where each face is: frame index, track id and box, one row per face in the record's order
    (what `stitch` groups by frame to match tracks across a seam)."""
    import pandas as pd

    x, y, w, h = faces.boxes.T
    return pd.DataFrame({"frame_index": faces.frame_index, "track_id": faces.track_ids, "x": x, "y": y, "w": w, "h": h})

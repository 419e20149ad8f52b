"""The annotate pipeline, one file per stage in the order they run:

    analyse.py   decode -> detect -> track (track ids) -> crop -> classify (expressions): `Faces`
    live.py      the annotated video drawn during the analysis, frames held until final (decode once)
    segments.py  a long video as time segments, stitched (--segments)
    keep.py      tracks that are faces kept, ids numbered in order of appearance, with the id map
                 (then fer_video.persons.stage: person ids, by that map)
    smooth.py    probabilities smoothed per track, which fix label and confidence
    render.py    the annotated MP4 or image: live.py's drawing kept, or the video sink
                 (fer_video.sinks.video) fed from the source decoded again
    write.py     the timeline: the Parquet sink (fer_video.sinks.timeline), closed last
    annotate.py  `annotate`: all of them for one input, as `Stages` says (flows/ passes its tasks)

Every stage takes and returns `Faces` (fer_video.faces.record), the whole video's faces in one
record. The outputs are sinks (fer_video.sinks): objects that take a video's `Faces` frame by
frame (`append`) and finish their file atomically (`close`); `fer_video.sinks.feed` runs them,
decoding the source only for a sink that draws. render and write are each one feed, one Prefect
task.

Plain Python: nothing here imports Prefect or flows/.
"""

from fer_video.jobs import AnnotateOptions
from fer_video.pipeline.analyse import Analysis, analyse
from fer_video.pipeline.annotate import STAGE_TABLE, Result, Stage, Stages, annotate
from fer_video.pipeline.keep import drop_false_tracks, keep_faces
from fer_video.pipeline.model_cache import load_classifier
from fer_video.pipeline.render import render
from fer_video.pipeline.segments import plan_segments, stitch
from fer_video.pipeline.smooth import smooth
from fer_video.pipeline.write import metadata, write
from fer_video.video import probe

__all__ = ["STAGE_TABLE", "AnnotateOptions", "Analysis", "Result", "Stage", "Stages", "analyse", "annotate",
           "drop_false_tracks", "keep_faces", "load_classifier", "metadata", "plan_segments", "probe", "render",
           "smooth", "stitch", "write"]

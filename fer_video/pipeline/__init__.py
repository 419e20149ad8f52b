"""The annotate pipeline, one file per stage in the order they run:

    analyse.py   decode -> detect -> track (track ids) -> crop -> classify (expressions): `Faces`
    segments.py  a long video as time segments, stitched (--segments)
    keep.py      tracks that are faces kept, ids numbered in order of appearance, with the id map
                 (then fer_video.persons.stage: person ids, by that map)
    smooth.py    probabilities smoothed per track, which fix label and confidence
    render.py    the annotated MP4 or image
    write.py     the timeline's Parquet file, written last
    annotate.py  `annotate`: all of them for one input, as `Stages` says (flows/ passes its tasks)

Analysis to smoothing take and return `Faces` (fer_video.faces.record), the whole video's faces
in one record; render and write take the timeline's rows, which `annotate.rows_of` makes from the
smoothed faces.

Plain Python: nothing here imports Prefect or flows/.
"""

from fer_video.jobs import AnnotateOptions
from fer_video.pipeline.analyse import Analysis, analyse
from fer_video.pipeline.annotate import Result, Stages, annotate, rows_of
from fer_video.pipeline.keep import drop_false_tracks, keep_faces
from fer_video.pipeline.model_cache import load_classifier
from fer_video.pipeline.render import render
from fer_video.pipeline.segments import analyse_segmented, plan_segments, stitch
from fer_video.pipeline.smooth import smooth
from fer_video.pipeline.write import metadata, write
from fer_video.video import probe

__all__ = ["AnnotateOptions", "Analysis", "Result", "Stages", "analyse", "analyse_segmented", "annotate",
           "drop_false_tracks", "keep_faces", "load_classifier", "metadata", "plan_segments", "probe", "render",
           "rows_of", "smooth", "stitch", "write"]

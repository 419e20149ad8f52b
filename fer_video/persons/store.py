"""The `<out>/.identity/` files that `--identity` writes (biometric data; see README "Who is who"):
`<name>.embeddings.parquet` holds each video's track embeddings, `persons.parquet` (the registry)
which (video, track) is which folder-wide person_id and, with `--people`, which name. Every file is
written atomically (temporary file, then rename).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fer_video.outputs import IDENTITY_DIR  # declared there: `is_output` must know the folder too

if TYPE_CHECKING:
    import pandas as pd

REGISTRY = "persons.parquet"
EMBEDDINGS_SUFFIX = ".embeddings.parquet"

EMBEDDINGS_SCHEMA = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("track_id", pa.int32(), nullable=False),
    pa.field("time_s", pa.float64(), nullable=False),  # when the embedded face was seen
    pa.field("quality", pa.float32(), nullable=False),  # score x frontality x size x sharpness, 0-1
    pa.field("embedding", pa.list_(pa.float32(), 128), nullable=False),  # dlib ResNet, L2 ~1
])
REGISTRY_SCHEMA = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("track_id", pa.int32(), nullable=False),
    pa.field("person_id", pa.int32(), nullable=False),  # folder-wide
    pa.field("person", pa.string(), nullable=True),  # a name from --people, else null
    pa.field("job_key", pa.string(), nullable=False),  # of the timeline linked: a new key is a new video
])


def identity_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / IDENTITY_DIR


def embeddings_path(out_dir: str | Path, name: str) -> Path:
    return identity_dir(out_dir) / f"{name}{EMBEDDINGS_SUFFIX}"


def write_atomic(table: pa.Table, path: Path) -> Path:
    from fer_video.outputs import atomic_path  # which also removes the temp file on Ctrl-C

    with atomic_path(path) as temp:
        pq.write_table(table, temp, compression="zstd")
    return path


def write_embeddings(embeddings: pd.DataFrame | None, out_dir: str | Path, name: str) -> Path:
    """Store one video's track embeddings (biometric data: only with --identity). A video without
    faces gets an empty file, so that a batch knows its embeddings are there."""
    import pandas as pd

    frame = (embeddings if embeddings is not None else pd.DataFrame(
        {"track_id": [], "time_s": [], "quality": [], "embedding": []})).assign(video_id=name)
    table = pa.table({
        "video_id": pa.array(frame["video_id"], pa.string()),
        "track_id": pa.array(frame["track_id"], pa.int32()),
        "time_s": pa.array(frame["time_s"], pa.float64()),
        "quality": pa.array(frame["quality"], pa.float32()),
        "embedding": pa.array([np.asarray(e, np.float32) for e in frame["embedding"]], pa.list_(pa.float32(), 128)),
    }, schema=EMBEDDINGS_SCHEMA)
    return write_atomic(table, embeddings_path(out_dir, name))


def read_embeddings(out_dir: str | Path) -> pd.DataFrame:
    import pandas as pd

    files = sorted(identity_dir(out_dir).glob(f"*{EMBEDDINGS_SUFFIX}"))
    files = [f for f in files if not f.name.startswith(".")]
    if not files:
        return pd.DataFrame({"video_id": [], "track_id": [], "time_s": [], "quality": [], "embedding": []})
    frame = pa.concat_tables([pq.read_table(f, schema=EMBEDDINGS_SCHEMA) for f in files]).to_pandas()
    frame["embedding"] = [np.asarray(e, np.float32) for e in frame["embedding"]]
    return frame


def read_registry(out_dir: str | Path) -> pd.DataFrame:
    path = identity_dir(out_dir) / REGISTRY
    if not path.exists():
        return REGISTRY_SCHEMA.empty_table().to_pandas()
    return pq.read_table(path, schema=REGISTRY_SCHEMA).to_pandas()


def write_registry(registry: pd.DataFrame, out_dir: str | Path) -> Path:
    """Store the folder's persons: (video_id, track_id, person_id, person, job_key) rows."""
    return write_atomic(pa.Table.from_pandas(registry, schema=REGISTRY_SCHEMA, preserve_index=False),
                        identity_dir(out_dir) / REGISTRY)

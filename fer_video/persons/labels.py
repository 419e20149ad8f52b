"""What the annotated video writes for a person after a face's track id."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def person_labels(rows: pd.DataFrame) -> list[str] | None:
    """`PersonLabels` of timeline rows, one per row: what the annotated video writes after each
    row's track id. None without person columns."""
    if "person_id" not in rows:
        return None
    from fer_video.faces.record import from_timeline_columns

    faces = from_timeline_columns(rows)
    return PersonLabels(faces)(faces)


def person_label(person_id, person=None) -> str:
    """What people read: the name, else `person_<id>`."""
    import pandas as pd

    if person is not None and not (isinstance(person, float) and np.isnan(person)) and person is not pd.NA:
        return str(person)
    return f"person_{int(person_id)}"


class PersonLabels:
    """`person_labels` for `Faces`: the spans of persons over tracks are taken once from the
    whole video's faces (a person spanning several tracks shows only there), then any frame's
    faces are labelled from them."""

    def __init__(self, faces):
        pairs = np.unique(np.stack([faces.person_ids, faces.track_ids], axis=1), axis=0)
        persons, spans = np.unique(pairs[:, 0], return_counts=True)
        self._spans = dict(zip(persons.tolist(), spans.tolist()))

    def __call__(self, faces) -> list[str]:
        return [person_label(p, n) if (isinstance(n, str) or self._spans.get(int(p), 1) > 1) else ""
                for p, n in zip(faces.person_ids, faces.persons)]

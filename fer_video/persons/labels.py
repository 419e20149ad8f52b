"""What the annotated video writes for a person after a face's track id."""

from __future__ import annotations

import numpy as np
import pandas as pd


def person_labels(rows: pd.DataFrame) -> list[str] | None:
    """What the annotated video writes after each row's track id: the name, else `person_<id>`
    when the person spans more than one track of `rows` (a lone track's person is itself, and
    repeating it is noise); "" otherwise. None without person columns."""
    if "person_id" not in rows:
        return None
    names = rows["person"] if "person" in rows else pd.Series([None] * len(rows), index=rows.index)
    spans = rows.groupby("person_id")["track_id"].nunique()
    return [person_label(p, n) if (isinstance(n, str) or spans[p] > 1) else ""
            for p, n in zip(rows["person_id"], names)]


def person_label(person_id, person=None) -> str:
    """What people read: the name, else `person_<id>`."""
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

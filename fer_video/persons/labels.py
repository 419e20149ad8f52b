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

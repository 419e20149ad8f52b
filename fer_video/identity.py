"""Kept only for `fer_video.timeline.summary`, which imports `person_label` from here; the persons
code is in `fer_video.persons`."""

from fer_video.persons.labels import person_label

__all__ = ["person_label"]

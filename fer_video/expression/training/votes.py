"""FER+ crowd votes (Barsoum et al., 2016) as the expression model's targets and yardstick.

FER+ had ten people vote on every FER2013 face over ten columns: the seven classes we name,
contempt, unknown and NF (not a face). A votes CSV maps each of a dataset's images, by its path
relative to the dataset root, to those ten counts and to FER2013's own label.

How the columns are treated:
- **contempt, unknown and NF votes are left out of the target**: the target is the share of the
  seven-class votes each class got. Contempt is 0.4% of the votes and has no class in the pipeline
  (folding it into disgust or angry would invent agreement nobody voted for).
- **A face is not a training face** when unknown + NF votes are more than half the votes (most
  voters could not read it, or saw no face), or when no vote went to one of the seven classes.
- **The FER+ majority** of a face is the column with the most votes when it is unique and one of
  the seven classes (FER+'s majority rule); a tie, or a win by contempt, unknown or NF, is none.
- **A clear face** is one whose majority equals FER2013's label: both sources agree.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_video.expression.labels import EMOTIONS

# The CSV's vote columns, in its order, and the class each of the first seven is in EMOTIONS.
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                "contempt", "unknown", "NF")
_CLASS_OF_COLUMN = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise",
                    "sadness": "sad", "anger": "angry", "disgust": "disgust", "fear": "fear"}
# EMOTIONS index -> its column in VOTE_COLUMNS
_COLUMN_OF_CLASS = np.array([VOTE_COLUMNS.index(col) for cls in EMOTIONS
                             for col, name in _CLASS_OF_COLUMN.items() if name == cls])
NO_MAJORITY = -1

# The dataset README's one suspect row: it reuses another face's FER+ name and votes.
SUSPECT_FILES = frozenset({"train/fear/Training_62764355.jpg"})


@dataclass
class Votes:
    """The ten vote counts of some faces, in one array (n, 10) in VOTE_COLUMNS order."""

    counts: np.ndarray

    @property
    def seven(self) -> np.ndarray:
        """(n, 7) votes of the seven classes, in EMOTIONS order."""
        return self.counts[:, _COLUMN_OF_CLASS]

    def distribution(self) -> np.ndarray:
        """(n, 7) share of the seven-class votes per class (zeros where there are none)."""
        seven = self.seven.astype(np.float64)
        total = seven.sum(axis=1, keepdims=True)
        return np.divide(seven, total, out=np.zeros_like(seven), where=total > 0)

    def usable(self) -> np.ndarray:
        """Faces that may train or be scored against the distribution: most voters read a face,
        and some voted for one of the seven classes."""
        unreadable = self.counts[:, VOTE_COLUMNS.index("unknown")] + self.counts[:, VOTE_COLUMNS.index("NF")]
        return (unreadable * 2 <= self.counts.sum(axis=1)) & (self.seven.sum(axis=1) > 0)

    def majority(self) -> np.ndarray:
        """(n,) EMOTIONS index of the FER+ majority, NO_MAJORITY where there is none."""
        top = self.counts.max(axis=1, keepdims=True)
        unique = (self.counts == top).sum(axis=1) == 1
        seven = self.seven
        winner = seven.argmax(axis=1)
        wins = unique & (seven.max(axis=1) == top[:, 0]) & (top[:, 0] > 0)
        return np.where(wins, winner, NO_MAJORITY)


def read_votes(csv_path: str | Path, relative_paths: list[str]) -> tuple[Votes, np.ndarray]:
    """The votes of each image (paths relative to the dataset root, as the CSV's `file` column
    writes them) and a mask of the images the CSV has a trustworthy row for. Raises ValueError
    naming the CSV when it lacks the columns."""
    wanted = {p.replace("\\", "/"): i for i, p in enumerate(relative_paths)}
    counts = np.zeros((len(relative_paths), len(VOTE_COLUMNS)), np.int64)
    found = np.zeros(len(relative_paths), bool)
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("file", *VOTE_COLUMNS) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_path}: not a votes CSV (no column {', '.join(missing)})")
        for row in reader:
            i = wanted.get(row["file"])
            if i is None or row["file"] in SUSPECT_FILES:
                continue
            counts[i] = [int(row[c]) for c in VOTE_COLUMNS]
            found[i] = True
    return Votes(counts), found


def targets(votes: Votes, labels: np.ndarray, label_weight: float, sharpen: float = 1.0) -> np.ndarray:
    """(n, 7) training targets: the vote distribution raised to the power `sharpen` (1: as voted;
    above 1: towards the majority) and renormalised, blended with weight `label_weight` with
    FER2013's one-hot label. FER2013's label carries what the search that found a face meant (a
    posed disgust, a staged fear) that few voters give those rare classes credit for."""
    dist = votes.distribution() ** float(sharpen)
    dist /= np.maximum(dist.sum(axis=1, keepdims=True), 1e-12)
    onehot = np.eye(len(EMOTIONS))[labels]
    return ((1 - label_weight) * dist + label_weight * onehot).astype(np.float32)


def relative_to_root(paths: list[str], root: str | Path) -> list[str]:
    """Image paths as the votes CSV keys them: relative to the dataset root, with '/'."""
    root = Path(root).resolve()
    return [Path(p).resolve().relative_to(root).as_posix() for p in paths]

"""FER+ crowd votes as targets and yardstick (fer_video.expression.training.votes):
the vote rules on hand-made rows, the evaluation's figures on hand-made predictions, the logit
bias's recall floor on another set of faces, and `fer-video train/evaluate --labels` with
`--time-limit` and resume on a tiny dataset made here. One check reads the real votes CSV when
the dataset is on this machine."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fer_video.expression.labels import EMOTIONS
from fer_video.expression.training.calibration import fit_logit_bias, recalls
from fer_video.expression.training.evaluate import votes_report
from fer_video.expression.training.votes import NO_MAJORITY, VOTE_COLUMNS, Votes, read_votes, targets
from helpers import run_cli, tiny_fer_dataset

ANGRY, DISGUST, FEAR, HAPPY, SAD, SURPRISE, NEUTRAL = range(7)
DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fer2013"


def votes(**columns) -> list[int]:
    """One face's ten votes from keyword counts, e.g. votes(neutral=7, fear=3)."""
    return [columns.get(name, 0) for name in VOTE_COLUMNS]


def test_majority_is_a_unique_seven_class_winner():
    v = Votes(np.array([
        votes(neutral=7, fear=3),          # clear neutral
        votes(happiness=4, surprise=4, sadness=2),  # tie: no majority
        votes(contempt=5, anger=4, disgust=1),      # contempt wins: no class of ours
        votes(unknown=6, fear=4),                   # unknown wins
        votes(disgust=3, anger=2, NF=2, unknown=2, contempt=1),  # plurality is enough
    ]))
    assert v.majority().tolist() == [NEUTRAL, NO_MAJORITY, NO_MAJORITY, NO_MAJORITY, DISGUST]


def test_unreadable_faces_are_not_usable_and_the_distribution_drops_other_columns():
    v = Votes(np.array([
        votes(NF=6, happiness=4),           # most say no face
        votes(unknown=3, NF=2, sadness=5),  # half unreadable: still usable
        votes(contempt=10),                 # no vote for our classes
        votes(neutral=6, anger=2, contempt=2),
    ]))
    assert v.usable().tolist() == [False, True, False, True]
    dist = v.distribution()
    np.testing.assert_allclose(dist[3, [NEUTRAL, ANGRY]], [0.75, 0.25])
    np.testing.assert_allclose(dist.sum(axis=1), [1, 1, 0, 1])


def test_targets_blend_the_votes_with_fer2013_s_label_and_sharpen():
    v = Votes(np.array([votes(neutral=8, fear=2)]))
    np.testing.assert_allclose(targets(v, np.array([FEAR]), 0.0)[0, [NEUTRAL, FEAR]], [0.8, 0.2])
    np.testing.assert_allclose(targets(v, np.array([FEAR]), 0.5)[0, [NEUTRAL, FEAR]], [0.4, 0.6])
    sharp = targets(v, np.array([FEAR]), 0.0, sharpen=2.0)[0]
    np.testing.assert_allclose(sharp[[NEUTRAL, FEAR]], [64 / 68, 4 / 68], rtol=1e-6)
    assert targets(v, np.array([FEAR]), 0.3).dtype == np.float32


def test_read_votes_matches_by_relative_path_and_distrusts_the_suspect_row(tmp_path):
    path = tmp_path / "votes.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "fer2013_row", "orig_label", *VOTE_COLUMNS])
        writer.writerow(["train/fear/a.jpg", 1, "fear", *votes(fear=9, neutral=1)])
        writer.writerow(["train/fear/Training_62764355.jpg", 5274, "fear", *votes(fear=10)])
    v, found = read_votes(path, ["train/fear/Training_62764355.jpg", "train/fear/a.jpg", "train/sad/b.jpg"])
    assert found.tolist() == [False, True, False]
    assert v.majority()[1] == FEAR
    bad = tmp_path / "bad.csv"
    bad.write_text("file,neutral\nx.jpg,3\n")
    with pytest.raises(ValueError, match="bad.csv: not a votes CSV"):
        read_votes(bad, ["x.jpg"])


def test_votes_report_figures():
    # Four faces: neutral by the crowd (FER2013 says sad), happy (agreed), a tie, fear (agreed).
    v = Votes(np.array([votes(neutral=8, sadness=2), votes(happiness=10), votes(anger=5, sadness=5),
                        votes(fear=6, surprise=4)]))
    labels = np.array([SAD, HAPPY, SAD, FEAR])
    probs = np.full((4, 7), 0.01)
    for face, cls in enumerate([NEUTRAL, HAPPY, SAD, SURPRISE]):
        probs[face, cls] = 0.94
    report = votes_report(probs, labels, v)
    assert report["faces_with_majority"] == 3
    assert report["accuracy"] == pytest.approx(2 / 3)
    assert report["fer2013_accuracy"] == pytest.approx(1 / 3)
    assert report["clear_faces"] == 2  # happy and fear
    assert report["clear_recall"]["happy"] == 1.0 and report["clear_recall"]["fear"] == 0.0
    assert report["mean_vote_share"] == pytest.approx((0.8 + 1.0 + 0.5 + 0.4) / 4)
    dist = v.distribution()
    expected = -(dist * np.log(probs)).sum(axis=1).mean()
    assert report["cross_entropy"] == pytest.approx(expected)
    assert report["predicted_share"]["neutral"] == 0.25


def test_the_bias_floor_can_hold_on_other_faces_than_accuracy():
    """Accuracy counted on every face, recall floor on the 'clear' ones: a rare class the
    plain argmax never names on the clear faces is lifted there."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 2000)
    logits = rng.normal(0, 1, (2000, 7))
    logits[np.arange(2000), labels] += 2.0
    logits[labels != DISGUST, DISGUST] -= 2.0  # elsewhere the network is sure it is no disgust
    clear_labels = np.full(50, DISGUST)
    clear_logits = rng.normal(0, 1, (50, 7))
    clear_logits[:, DISGUST] += 0.5
    clear_logits[:, NEUTRAL] += 1.5  # the network calls these disgust faces neutral
    before = recalls(clear_logits.argmax(1), clear_labels, 7)[DISGUST]
    bias = fit_logit_bias(logits, labels, 0.75, floor_on=(clear_logits, clear_labels))
    after = recalls((clear_logits + bias).argmax(1), clear_labels, 7)[DISGUST]
    assert before < 0.2 and after >= 0.75


@pytest.fixture(scope="module")
def voted(tmp_path_factory):
    """A tiny dataset whose votes agree with its labels, but for a few faces the crowd calls
    neutral and a few it calls 'not a face'."""
    root = tiny_fer_dataset(tmp_path_factory.mktemp("voted"), 10)
    tiny_fer_dataset(root, 3, split="public_test")
    path = root / "votes.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "fer2013_row", "orig_label", *VOTE_COLUMNS])
        for row, image in enumerate(sorted(root.glob("*/*/*.jpg"))):
            cls = image.parent.name
            name = {"angry": "anger", "happy": "happiness", "sad": "sadness"}.get(cls, cls)
            counts = {"001.jpg": {"NF": 8}, "002.jpg": {"neutral": 7}}.get(image.name[-7:], {"unknown": 1})
            counts[name] = counts.get(name, 0) + 10 - sum(counts.values())
            writer.writerow([image.relative_to(root).as_posix(), row, cls, *votes(**counts)])
    return root, path


def test_train_on_votes_stops_at_the_time_limit_and_resumes(voted, tmp_path):
    root, csv_path = voted
    run_dir = tmp_path / "run"
    common = ["--labels", csv_path, "--run-dir", run_dir, "--widths", "4,8", "--epochs", "3",
              "--tta", "flip", "--recall-floor", "0.5"]
    first = run_cli("train", root, *common, "--time-limit", "0.5s")
    assert first.returncode == 0, first.stderr
    assert "stopped at the time limit after epoch 1 of 3" in first.stdout
    assert not (run_dir / "model.json").exists(), "a stopped run exports nothing"
    state = sum(f.stat().st_size for f in (run_dir / "backup").iterdir())
    assert 0 < state < 10_000_000
    log = (run_dir / "train.log").read_text()
    assert "votes: 63 of 70 faces have usable FER+ votes" in log  # the seven 'not a face' left out
    second = run_cli("train", root, *common)
    assert second.returncode == 0, second.stderr
    new_log = (run_dir / "train.log").read_text()[len(log):]
    assert "epoch 2/3" in new_log and "epoch 3/3" in new_log and "epoch 1/3" not in new_log
    card = json.loads((run_dir / "model.json").read_text())
    assert card["validation"]["scored_against"] == "FER+ majority"
    assert set(card["validation"]["clear_recall"]) == set(EMOTIONS)
    assert card["config"]["votes"] == str(csv_path.resolve()) and card["config"]["label_weight"] == 0.3

    evaluated = run_cli("evaluate", root, "--model", run_dir / "model.keras", "--labels", csv_path,
                        "--json", "--out", tmp_path / "eval")
    assert evaluated.returncode == 0, evaluated.stderr
    fp = json.loads(evaluated.stdout)["ferplus"]
    assert fp["faces_with_votes"] == 21 and fp["faces_with_majority"] == 14  # NF and ties left out
    for key in ("accuracy", "macro_f1", "mean_vote_share", "fer2013_accuracy", "ece"):
        assert 0 <= fp[key] <= 1, key
    assert set(fp["recall"]) == set(fp["clear_recall"]) == set(EMOTIONS)
    from fer_video.expression.training.evaluate import format_report

    assert "against the crowd's majority" in format_report(json.loads(evaluated.stdout))


def test_a_missing_votes_csv_is_one_line(voted, tmp_path):
    root, _ = voted
    result = run_cli("train", root, "--run-dir", tmp_path / "run", "--labels", tmp_path / "nope.csv")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"fer-video: error: {tmp_path / 'nope.csv'}: no such votes CSV"]
    bad = run_cli("train", root, "--run-dir", tmp_path / "run", "--time-limit", "soon")
    assert bad.returncode == 2 and "--time-limit 'soon'" in bad.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not (DATASET / "ferplus_votes.csv").is_file(),
                    reason=f"needs the FER2013 dataset with FER+ votes at {DATASET} (not in the repo)")
def test_the_real_votes_give_the_dataset_readme_s_figures():
    rows = list(csv.DictReader((DATASET / "ferplus_votes.csv").open()))
    paths = [r["file"] for r in rows]
    labels = np.array([EMOTIONS.index(r["orig_label"]) for r in rows])
    v, found = read_votes(DATASET / "ferplus_votes.csv", paths)
    train = np.array([p.startswith("train/") for p in paths])
    assert found.sum() == len(rows) - 1  # the suspect row
    majority = v.majority()
    has = train & (majority >= 0)
    assert (majority[has] == labels[has]).mean() == pytest.approx(0.658, abs=0.001)
    assert (majority[has] == NEUTRAL).mean() == pytest.approx(0.350, abs=0.001)
    assert (majority[has] == FEAR).mean() == pytest.approx(0.024, abs=0.001)

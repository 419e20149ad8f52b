"""Evaluating a model on a FER2013-layout folder: accuracy, per-class report, confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fer_video.expression.labels import EMOTIONS
from fer_video.expression.training.calibration import expected_calibration_error, softmax
from fer_video.expression.training.data import load_folder
from fer_video.expression.training.votes import Votes, read_votes, relative_to_root
from fer_video.outputs import atomic_path


def pixel_twins(faces: np.ndarray, reference: str | Path) -> np.ndarray:
    """Mask of `faces` whose pixels are exactly those of some image under reference/<class>/
    (FER2013 has 280 public_test faces with a twin in train)."""
    import hashlib

    ref_faces, _, _ = load_folder(reference)
    seen = {hashlib.sha1(f.tobytes()).digest() for f in ref_faces}
    return np.array([hashlib.sha1(f.tobytes()).digest() in seen for f in faces], bool)


def evaluate(model_path: str | Path | None, folder: str | Path, flip: bool | None = None, backend: str = "auto",
             twins_of: str | Path | None = None, votes_csv: str | Path | None = None,
             dataset_root: str | Path | None = None) -> dict:
    """The report for every image under folder/<class>/, as the pipeline would classify them:
    through the pipeline's own `ExpressionClassifier` (the TFLite model, see classify.py, with
    the test-time augmentation its model card names unless `flip` says otherwise);
    backend="keras" evaluates the .keras through TensorFlow instead, for comparison.
    `twins_of`: a folder of training images; the report adds accuracy without the faces that
    have a pixel twin there. `votes_csv`: FER+ votes keyed by paths relative to `dataset_root`;
    the report adds `ferplus` (votes_report)."""
    from fer_video.expression.classify import ExpressionClassifier

    classifier = ExpressionClassifier(model_path, flip=flip, backend=backend)
    faces, labels, paths = load_folder(folder)
    logits = classifier.logits(faces)
    probs = softmax(logits, classifier.temperature)
    predicted = probs.argmax(axis=1)
    ferplus = {}
    if votes_csv is not None:
        relative = relative_to_root(paths, dataset_root if dataset_root is not None else Path(folder).parent)
        votes, found = read_votes(votes_csv, relative)
        ferplus = {"ferplus": votes_report(probs[found], labels[found], Votes(votes.counts[found]))}
    present = sorted(set(labels.tolist()) | set(predicted.tolist()))
    counts = confusion_matrix(labels, predicted, len(EMOTIONS))
    per_class = class_metrics(counts, present)
    extra = {}
    if twins_of is not None and Path(twins_of).is_dir():
        twin = pixel_twins(faces, twins_of)
        extra = {"twins_in_train": int(twin.sum()),
                 "accuracy_without_twins": float((predicted[~twin] == labels[~twin]).mean())}
    return {
        "accuracy": float((predicted == labels).mean()),
        **extra,
        "images": int(len(labels)),
        "folder": str(folder),
        "model": str(classifier.path),
        "model_version": classifier.version,
        "flip_tta": classifier.flip,
        "flip_below": classifier.flip_below,
        "backend": classifier.backend,
        "temperature": classifier.temperature,
        "ece": expected_calibration_error(probs, labels),
        "ece_before_temperature": expected_calibration_error(softmax(logits), labels),
        "per_class": {EMOTIONS[i]: metrics for i, metrics in per_class.items()},
        "macro_f1": float(np.mean([m["f1-score"] for m in per_class.values()])) if per_class else 0.0,
        "confusion_matrix": {"labels": list(EMOTIONS), "counts": counts.tolist()},
        **ferplus,
    }


def votes_report(probs: np.ndarray, labels: np.ndarray, votes: Votes) -> dict:
    """How predictions agree with the FER+ crowd: accuracy, macro-F1, per-class recall and ECE
    against the majority (faces with one clear 7-class winner); recall on the clear faces (FER2013's
    label equals the majority); the mean share of the ten votes the predicted class got and the
    mean cross-entropy against the 7-class vote distribution (usable faces); accuracy against
    FER2013's labels on the same faces, alongside."""
    predicted = probs.argmax(axis=1)
    majority = votes.majority()
    has = majority >= 0
    clear = has & (majority == labels)
    usable = votes.usable()
    counts = confusion_matrix(majority[has], predicted[has], len(EMOTIONS))
    per_class = class_metrics(counts, list(range(len(EMOTIONS))))
    clear_metrics = class_metrics(confusion_matrix(majority[clear], predicted[clear], len(EMOTIONS)),
                                  list(range(len(EMOTIONS))))
    share = votes.seven[np.arange(len(predicted)), predicted] / np.maximum(votes.counts.sum(axis=1), 1)
    dist = votes.distribution()
    cross_entropy = -(dist[usable] * np.log(np.clip(probs[usable], 1e-12, 1))).sum(axis=1)
    present = [i for i in range(len(EMOTIONS)) if per_class[i]["support"] > 0]
    return {
        "faces_with_votes": int(len(labels)),
        "faces_with_majority": int(has.sum()),
        "accuracy": float((predicted[has] == majority[has]).mean()) if has.any() else 0.0,
        "macro_f1": float(np.mean([per_class[i]["f1-score"] for i in present])) if present else 0.0,
        "recall": {EMOTIONS[i]: per_class[i]["recall"] for i in range(len(EMOTIONS))},
        "ece": expected_calibration_error(probs[has], majority[has]) if has.any() else 0.0,
        "clear_faces": int(clear.sum()),
        "clear_recall": {EMOTIONS[i]: clear_metrics[i]["recall"] for i in range(len(EMOTIONS))},
        "mean_vote_share": float(share[usable].mean()) if usable.any() else 0.0,
        "cross_entropy": float(cross_entropy.mean()) if usable.any() else 0.0,
        "fer2013_accuracy": float((predicted[has] == labels[has]).mean()) if has.any() else 0.0,
        "predicted_share": {EMOTIONS[i]: float((predicted == i).mean()) for i in range(len(EMOTIONS))},
        "majority_share": {EMOTIONS[i]: float((majority[has] == i).mean()) for i in range(len(EMOTIONS))},
    }


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """counts[true, predicted] (what sklearn.metrics.confusion_matrix gives, without importing
    scikit-learn and SciPy: seconds of a short evaluation)."""
    counts = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(counts, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return counts


def class_metrics(counts: np.ndarray, classes: list[int]) -> dict[int, dict[str, float]]:
    """Precision, recall, F1 and support per class from the confusion matrix, 0 where undefined
    (sklearn's classification_report with zero_division=0; tests/test_evaluate_metrics.py)."""
    out = {}
    for i in classes:
        tp = float(counts[i, i])
        predicted, support = float(counts[:, i].sum()), float(counts[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[i] = {"precision": precision, "recall": recall, "f1-score": f1, "support": support}
    return out


def write_report(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """report.json and confusion_matrix.png (rows: true class, normalised per row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = np.array(report["confusion_matrix"]["counts"], float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7, 6), dpi=120)
    sns.heatmap(rates, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, square=True,
                xticklabels=EMOTIONS, yticklabels=EMOTIONS, cbar_kws={"label": "share of true class"}, ax=ax)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{Path(report['folder']).name}: accuracy {report['accuracy']:.1%} ({report['images']} faces)")
    fig.tight_layout()
    png = out_dir / "confusion_matrix.png"
    with atomic_path(png) as temp:
        fig.savefig(temp, format="png")
    plt.close(fig)
    js = out_dir / "report.json"
    with atomic_path(js) as temp:
        temp.write_text(json.dumps(report, indent=2) + "\n")
    return {"json": js, "png": png}


def format_report(report: dict) -> str:
    tta = "flip" if report["flip_tta"] else "none"
    if report["flip_tta"] and report.get("flip_below") is not None:
        tta += f" (faces below {report['flip_below']:g} confidence)"
    lines = [f"accuracy {report['accuracy']:.4f} on {report['images']} faces ({report['folder']}), TTA {tta}"]
    if "accuracy_without_twins" in report:
        lines.append(f"accuracy {report['accuracy_without_twins']:.4f} without the {report['twins_in_train']} "
                     "faces that have a pixel twin in train")
    lines += [f"expected calibration error {report['ece']:.4f} ({report['ece_before_temperature']:.4f} before "
              f"temperature scaling), macro F1 {report['macro_f1']:.4f}",
             "", f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, m in report["per_class"].items():
        lines.append(f"{name:<10}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1-score']:>10.3f}{int(m['support']):>10d}")
    if "ferplus" in report:
        fp = report["ferplus"]
        lines += ["", f"FER+ votes: accuracy {fp['accuracy']:.4f} against the crowd's majority "
                  f"({fp['faces_with_majority']} faces with one), macro F1 {fp['macro_f1']:.4f}, ECE {fp['ece']:.4f}",
                  f"mean share of votes for the predicted class {fp['mean_vote_share']:.4f}, cross-entropy "
                  f"against the votes {fp['cross_entropy']:.4f}; FER2013 labels on the same faces "
                  f"{fp['fer2013_accuracy']:.4f}",
                  f"{'class':<10}{'recall':>10}{'clear':>10}{'predicted':>10}{'crowd':>10}"
                  f"   (clear: {fp['clear_faces']} faces where FER2013 and the crowd agree)"]
        for name in EMOTIONS:
            lines.append(f"{name:<10}{fp['recall'][name]:>10.3f}{fp['clear_recall'][name]:>10.3f}"
                         f"{fp['predicted_share'][name]:>10.1%}{fp['majority_share'][name]:>10.1%}")
    return "\n".join(lines)

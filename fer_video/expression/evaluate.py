"""Evaluating a model on a FER2013-layout folder: accuracy, per-class report, confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fer_video.expression.calibration import expected_calibration_error, softmax
from fer_video.expression.data import load_folder
from fer_video.expression.labels import EMOTIONS


def pixel_twins(faces: np.ndarray, reference: str | Path) -> np.ndarray:
    """Mask of `faces` whose pixels are exactly those of some image under reference/<class>/
    (FER2013 has 280 public_test faces with a twin in train)."""
    import hashlib

    ref_faces, _, _ = load_folder(reference)
    seen = {hashlib.sha1(f.tobytes()).digest() for f in ref_faces}
    return np.array([hashlib.sha1(f.tobytes()).digest() in seen for f in faces], bool)


def evaluate(model_path: str | Path | None, folder: str | Path, flip: bool | None = None, backend: str = "auto",
             twins_of: str | Path | None = None) -> dict:
    """The report for every image under folder/<class>/, as the pipeline would classify them:
    through the pipeline's own `ExpressionClassifier` (the TFLite model, see classify.py, with
    the test-time augmentation its model card names unless `flip` says otherwise);
    backend="keras" evaluates the .keras through TensorFlow instead, for comparison.
    `twins_of`: a folder of training images; the report adds accuracy without the faces that
    have a pixel twin there."""
    from sklearn.metrics import classification_report, confusion_matrix

    from fer_video.expression.classify import ExpressionClassifier

    classifier = ExpressionClassifier(model_path, flip=flip, backend=backend)
    faces, labels, _ = load_folder(folder)
    logits = classifier.logits(faces)
    probs = softmax(logits, classifier.temperature)
    predicted = probs.argmax(axis=1)
    present = sorted(set(labels.tolist()) | set(predicted.tolist()))
    report = classification_report(
        labels, predicted, labels=present, target_names=[EMOTIONS[i] for i in present],
        output_dict=True, zero_division=0,
    )
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
        "backend": classifier.backend,
        "temperature": classifier.temperature,
        "ece": expected_calibration_error(probs, labels),
        "ece_before_temperature": expected_calibration_error(softmax(logits), labels),
        "per_class": {
            EMOTIONS[i]: {k: float(report[EMOTIONS[i]][k]) for k in ("precision", "recall", "f1-score", "support")}
            for i in present
        },
        "macro_f1": float(report["macro avg"]["f1-score"]),
        "confusion_matrix": {
            "labels": list(EMOTIONS),
            "counts": confusion_matrix(labels, predicted, labels=list(range(len(EMOTIONS)))).tolist(),
        },
    }


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
    fig.savefig(png)
    plt.close(fig)
    js = out_dir / "report.json"
    js.write_text(json.dumps(report, indent=2) + "\n")
    return {"json": js, "png": png}


def format_report(report: dict) -> str:
    tta = "flip" if report["flip_tta"] else "none"
    lines = [f"accuracy {report['accuracy']:.4f} on {report['images']} faces ({report['folder']}), TTA {tta}"]
    if "accuracy_without_twins" in report:
        lines.append(f"accuracy {report['accuracy_without_twins']:.4f} without the {report['twins_in_train']} "
                     "faces that have a pixel twin in train")
    lines += [f"expected calibration error {report['ece']:.4f} ({report['ece_before_temperature']:.4f} before "
              f"temperature scaling), macro F1 {report['macro_f1']:.4f}",
             "", f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, m in report["per_class"].items():
        lines.append(f"{name:<10}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1-score']:>10.3f}{int(m['support']):>10d}")
    return "\n".join(lines)

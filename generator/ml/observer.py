"""The machine observer: a small CNN, trained from scratch, asked the readers' question "real or synthetic?".

Split (DESIGN.md, "Held out means held out by subject")
    Every image carries a group: for a real image its subject (volume), for a synthetic image its
    (training job, seed block). ``split_by_group`` never puts a group on both sides. A group holds one
    class only (a mixed group is refused: it usually means a subject id collided with a job id, so
    give keys like ("volume", 7) and ("job", 3, 0)). Per class, groups go to the test side in
    random order (seeded) until that class's test share reaches ``test_fraction``; the groups of
    ``must_test`` images (the images the readers saw) go first, whole. One group per class always
    stays in training, so a class with a single group (one subject, as in the one-volume demo) is
    never tested: its ``must_test`` images stay in training (``must_test_in_train``) and
    ``run_observer`` refuses the split, since an accuracy without both classes on both sides says
    nothing. Pass finer groups only knowingly: grid slices of one volume are near-copies.
Scored set: one image per held-out group, as many real as synthetic
    Slices of one subject are near-copies, and a classifier trained on a few subjects calls a new
    subject's slices alike: whichever way it leans on that subject, all its slices lean with it.
    Counted as independent trials they make the binomial test's p-value far too small: real
    against real on the tests' pseudo-subjects, 8 subjects × 40 slices, every held-out slice
    scored, gave p < 0.05 for 3 of 8 data seeds (one slice per subject, 48 × 6: none of 8). So
    the statistics count at most ``test_images_per_group`` images per held-out group (default 1:
    the held-out subjects, not their slices, are the sample; a readers' image first when the
    group has one), and the larger class is then thinned at random (readers' images
    kept first) to the smaller one's count. On that balanced set a classifier that ignores the
    image scores 0.5 whatever it answers, so the exact binomial test against 0.5 is fair.
    ``test_images_per_group=None`` scores every held-out image: right only when images within a
    group are independent draws (a generator's seeds), not for a subject's slices. Every image
    of the held-out groups is still called and listed (``test_indices``), the readers' images
    among them, for per-image comparison with the readers. Training weights each class by the
    inverse of its share, so neither class is the cheap answer.
Statistics
    Positive class = real, as for the readers: TP real called real, FN real called synthetic, FP
    synthetic called real, TN synthetic called synthetic; an image is called real when its logit
    is > 0. On the scored set: accuracy, balanced accuracy (equal to it, the set being balanced),
    ``scipy.stats.binomtest`` of correct calls, two-sided, against 0.5; significant when p < α
    (default α = 0.05); the accuracy's interval is Clopper–Pearson at 1 − α.
Determinism
    ``run_observer`` seeds Python, NumPy and TensorFlow (``keras.utils.set_random_seed``), gives
    every initializer and the shuffle their own seed, and turns on TensorFlow's op determinism.
    That switch is process-wide and TensorFlow has no public way to turn it off again: run the
    observer in a worker process of its own kind (the CPU queue), not in the GPU training worker.

TensorFlow is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

REAL, SYNTHETIC = "real", "synthetic"
ALPHA = 0.05
FILTERS = (16, 32, 64)
KERNEL_SIZE = 3
LEARNING_RATE = 1e-3

ProgressCallback = Callable[[int, int, dict[str, float]], None]


@dataclass(frozen=True)
class GroupSplit:
    """Indices into the image list: ``train`` and ``test`` share no group; ``scored`` ⊆ ``test`` is scored."""

    train: np.ndarray
    test: np.ndarray  # every image of the held-out groups: all are called
    scored: np.ndarray  # at most ``test_images_per_group`` per group, as many real as synthetic
    must_test_in_train: np.ndarray
    groups_per_side: dict[str, dict[str, int]]  # {"train"|"test": {"real": n, "synthetic": n}}
    test_images_per_group: int | None
    notes: tuple[str, ...]

    def has_both_classes_on_both_sides(self) -> bool:
        return all(counts[REAL] and counts[SYNTHETIC] for counts in self.groups_per_side.values())

    def describe(self) -> dict[str, Any]:
        return {
            "groups": self.groups_per_side,
            "n_train": len(self.train),
            "n_test": len(self.test),
            "n_scored": len(self.scored),
            "test_images_per_group": self.test_images_per_group,
            "must_test_in_train": self.must_test_in_train.tolist(),
            "notes": list(self.notes),
        }


def split_by_group(  # noqa: C901  (one pass that keeps groups whole; its branches are its rules)
    labels: Sequence[str],
    groups: Sequence[Hashable],
    *,
    test_fraction: float,
    seed: int,
    must_test: set[int] | None = None,
    test_images_per_group: int | None = 1,
) -> GroupSplit:
    """Split images into train and test by group, ``must_test`` images' groups to test first; pick the scored set."""
    label_array = _checked_labels(labels)
    if len(groups) != len(label_array):
        raise ValueError(f"{len(label_array)} labels but {len(groups)} groups")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if test_images_per_group is not None and test_images_per_group < 1:
        raise ValueError(f"test_images_per_group must be positive or None, got {test_images_per_group}")
    must_test = set(must_test or ())
    if any(not 0 <= index < len(label_array) for index in must_test):
        raise ValueError("must_test holds an index outside the image list")

    members: dict[Hashable, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    group_label: dict[Hashable, str] = {}
    for group, indices in members.items():
        kinds = set(label_array[indices])
        if len(kinds) > 1:
            raise ValueError(f"group {group!r} holds both real and synthetic images; give each class its own keys")
        group_label[group] = kinds.pop()

    rng = np.random.default_rng(seed)
    notes: list[str] = []
    test_groups: list[Hashable] = []
    groups_per_side = {"train": {REAL: 0, SYNTHETIC: 0}, "test": {REAL: 0, SYNTHETIC: 0}}
    for kind in (REAL, SYNTHETIC):
        # First-appearance order, then a seeded shuffle: keys of mixed types need no sorting.
        kind_groups = [group for group in members if group_label[group] == kind]
        kind_groups = [kind_groups[position] for position in rng.permutation(len(kind_groups))]
        wanted = [group for group in kind_groups if must_test.intersection(members[group])]
        others = [group for group in kind_groups if group not in wanted]
        target = test_fraction * sum(len(members[group]) for group in kind_groups)
        chosen, in_test = [], 0
        for group in wanted + others:
            if len(chosen) == len(kind_groups) - 1:
                break  # the last group stays in training
            if group in wanted or in_test < target:
                chosen.append(group)
                in_test += len(members[group])
        if len(kind_groups) < 2:
            notes.append(f"{kind} images come from {len(kind_groups)} group(s): none can be held out")
        test_groups.extend(chosen)
        groups_per_side["test"][kind] = len(chosen)
        groups_per_side["train"][kind] = len(kind_groups) - len(chosen)

    in_test = {index for group in test_groups for index in members[group]}
    train = np.array([index for index in range(len(label_array)) if index not in in_test], dtype=int)
    test = np.array(sorted(in_test), dtype=int)
    must_test_in_train = np.array(sorted(must_test - in_test), dtype=int)
    if len(must_test_in_train):
        notes.append(f"{len(must_test_in_train)} must_test image(s) stay in training: their group is its class's last")

    # Per held-out group up to test_images_per_group images, readers' images first; then the larger
    # class thinned at random (readers' images last) to the smaller one's count.
    picked: dict[str, list[int]] = {REAL: [], SYNTHETIC: []}
    for group in test_groups:
        indices = [members[group][position] for position in rng.permutation(len(members[group]))]
        indices.sort(key=lambda index: index not in must_test)  # stable: random order within each kind
        picked[group_label[group]].extend(indices[:test_images_per_group])
    per_class = min(len(picked[REAL]), len(picked[SYNTHETIC]))
    scored = []
    for kind in (REAL, SYNTHETIC):
        candidates = [picked[kind][position] for position in rng.permutation(len(picked[kind]))]
        candidates.sort(key=lambda index: index not in must_test)
        scored.extend(candidates[:per_class])
    return GroupSplit(
        train=train,
        test=test,
        scored=np.array(sorted(scored), dtype=int),
        must_test_in_train=must_test_in_train,
        groups_per_side=groups_per_side,
        test_images_per_group=test_images_per_group,
        notes=tuple(notes),
    )


def build_observer(size: int, *, seed: int = 0) -> keras.Model:
    """Images [b, s, s, 1] in [−1, 1] → one float32 logit per image (real > 0 > synthetic).

    Three 3×3 convolutions (16, 32, 64 filters, ReLU), each followed by 2×2 max pooling; global
    average pooling; a dense logit. The first convolution sees full resolution, so pixel-scale
    texture (noise, blur, GAN checkerboards) reaches the classifier.
    """
    import keras
    from keras import layers

    image = keras.Input(shape=(size, size, 1), name="image")
    x = image
    for index, filters in enumerate(FILTERS, start=1):
        x = layers.Conv2D(
            filters,
            KERNEL_SIZE,
            padding="same",
            activation="relu",
            kernel_initializer=keras.initializers.HeNormal(seed=seed + index),
            dtype="float32",
            name=f"conv{index}",
        )(x)
        x = layers.MaxPooling2D(2, dtype="float32", name=f"pool{index}")(x)
    x = layers.GlobalAveragePooling2D(dtype="float32", name="average")(x)
    logit = layers.Dense(
        1, kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 10), dtype="float32", name="logit"
    )(x)
    return keras.Model(image, logit, name=f"observer_{size}")


@dataclass(frozen=True)
class ObserverResult:
    """The observer's calls on the held-out images and the statistics of the scored ones.

    Indices refer to the caller's image list; counts, rates and the test are over ``scored_indices``.
    """

    n_train: int
    n_test: int  # images of the held-out groups, all called
    n_scored: int
    accuracy: float
    balanced_accuracy: float
    accuracy_interval: tuple[float, float]  # Clopper–Pearson, at 1 − alpha
    p_value: float  # exact binomial, two-sided, correct calls against 0.5
    alpha: float
    significant: bool
    tp: int
    fn: int
    fp: int
    tn: int
    test_indices: list[int]
    test_probabilities: list[float]  # the observer's probability that the image is real
    test_calls: list[str]  # "real" or "synthetic"
    scored_indices: list[int]
    split: dict[str, Any]
    seed: int
    epochs: int
    batch_size: int
    image_size: int
    train_loss: list[float]  # per epoch
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types, for a JSONField; ``from_json`` reads it back."""
        values = asdict(self)
        values["accuracy_interval"] = list(self.accuracy_interval)
        return values

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> ObserverResult:
        return cls(**{**values, "accuracy_interval": tuple(values["accuracy_interval"])})


def run_observer(
    images: np.ndarray,
    labels: Sequence[str],
    groups: Sequence[Hashable],
    *,
    seed: int,
    epochs: int,
    batch_size: int,
    must_test: set[int] | None = None,
    test_fraction: float = 0.5,
    test_images_per_group: int | None = 1,
    alpha: float = ALPHA,
    progress: ProgressCallback | None = None,
) -> ObserverResult:
    """Split by group, train a fresh observer on the train side, call every held-out image, test the scored ones.

    ``images`` [n, s, s] float32 in [−1, 1]; ``labels`` "real"/"synthetic"; ``groups`` one key per
    image; ``must_test`` indices of the readers' images (see the module's docstring).
    ``progress(epoch, epochs, logs)`` after each epoch, 1-based; ``logs`` holds the epoch's "loss".
    """
    import keras
    import tensorflow as tf
    from scipy.stats import binomtest

    started = time.monotonic()
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be shaped (n, s, s), got {images.shape}")
    if not np.all(np.isfinite(images)):
        raise ValueError("images hold NaN or infinite values")
    if epochs < 1 or batch_size < 1:
        raise ValueError("epochs and batch_size must be positive")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    label_array = _checked_labels(labels)
    split = split_by_group(
        label_array,
        groups,
        test_fraction=test_fraction,
        seed=seed,
        must_test=must_test,
        test_images_per_group=test_images_per_group,
    )
    if not split.has_both_classes_on_both_sides():
        raise ValueError(f"the split needs real and synthetic groups on both sides, got {split.groups_per_side}")

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    is_real = (label_array == REAL).astype(np.float32)
    train_real = is_real[split.train]
    # Each class weighs as much as the other in the loss, whatever its share of the training side.
    class_weights = len(train_real) / (2.0 * np.array([np.sum(train_real == 0), np.sum(train_real == 1)]))
    sample_weights = class_weights[train_real.astype(int)].astype(np.float32)
    dataset = (
        tf.data.Dataset.from_tensor_slices((images[split.train, ..., None], train_real, sample_weights))
        .shuffle(len(split.train), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
    )
    model = build_observer(images.shape[1], seed=seed)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    train_loss: list[float] = []

    def on_epoch_end(epoch: int, logs: dict[str, Any] | None) -> None:
        logs = {name: float(value) for name, value in (logs or {}).items()}
        train_loss.append(logs.get("loss", float("nan")))
        if progress is not None:
            progress(epoch + 1, epochs, logs)

    model.fit(
        dataset,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)],
    )

    logits = model.predict(images[split.test, ..., None], batch_size=batch_size, verbose=0)[:, 0].astype(np.float64)
    scored = np.isin(split.test, split.scored)
    called_real, truly_real = logits[scored] > 0, is_real[split.test][scored] == 1
    tp, fn = int(np.sum(truly_real & called_real)), int(np.sum(truly_real & ~called_real))
    fp, tn = int(np.sum(~truly_real & called_real)), int(np.sum(~truly_real & ~called_real))
    n_scored = len(split.scored)
    test = binomtest(tp + tn, n_scored, 0.5, alternative="two-sided")
    interval = test.proportion_ci(confidence_level=1.0 - alpha, method="exact")
    return ObserverResult(
        n_train=len(split.train),
        n_test=len(split.test),
        n_scored=n_scored,
        accuracy=(tp + tn) / n_scored,
        balanced_accuracy=(tp / (tp + fn) + tn / (tn + fp)) / 2,
        accuracy_interval=(float(interval.low), float(interval.high)),
        p_value=float(test.pvalue),
        alpha=alpha,
        significant=bool(test.pvalue < alpha),
        tp=tp,
        fn=fn,
        fp=fp,
        tn=tn,
        test_indices=split.test.tolist(),
        test_probabilities=(1.0 / (1.0 + np.exp(-logits))).tolist(),
        test_calls=[REAL if logit > 0 else SYNTHETIC for logit in logits],
        scored_indices=split.scored.tolist(),
        split=split.describe(),
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        image_size=images.shape[1],
        train_loss=train_loss,
        seconds=time.monotonic() - started,
    )


def _checked_labels(labels: Sequence[str]) -> np.ndarray:
    label_array = np.asarray(labels, dtype=object)
    unknown = set(label_array.tolist()) - {REAL, SYNTHETIC}
    if unknown:
        raise ValueError(f"labels must be {REAL!r} or {SYNTHETIC!r}, got {sorted(map(str, unknown))}")
    return label_array

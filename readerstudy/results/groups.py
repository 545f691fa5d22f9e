"""Group rows of the results table: the Obuchowski–Rockette–Hillis interval (``mrmc``) of a group's
mean accuracy and balanced accuracy, for the paper's two groups and for all readers.

Random readers and random cases: the interval widens with the spread between readers (MS(R))
and with the covariance that shared cases give their readers (Cov₂, by the jackknife over cases).
A real case is a person: leaving it out leaves out all their slices together, since two slices of
one brain are not independent cases; a synthetic case is an image. Simulated readers are left
out; a group of one reader gets its mean and no interval."""

from collections import defaultdict
from dataclasses import dataclass

from readerstudy.reading.models import Reader

from .mrmc import OrhInterval, ReaderCalls, orh_group_interval

ALL_READERS = "all readers"


@dataclass(frozen=True)
class GroupInference:
    group: str
    readers: tuple[str, ...]
    accuracy: OrhInterval | None
    balanced_accuracy: OrhInterval | None


def case_key(*, image_id: int, image_class: str, subject_id: int | None) -> str:
    """The unit left out together: a real image's person (or the image, without one); a synthetic image."""
    if image_class == "real" and subject_id is not None:
        return f"subject:{subject_id}"
    return f"image:{image_id}"


def group_inferences(
    *, called: dict[Reader, list[tuple[str, str, int, int | None]]], label, group_of
) -> list[GroupInference]:
    """``called``: per reader, their called main-phase trials as (truth, call, image id, subject id).
    Groups in the order their first reader appears, then all readers (when there are two groups)."""
    members: dict[str, list[Reader]] = defaultdict(list)
    for reader in called:
        if not reader.simulated:
            members[group_of(reader)].append(reader)
    if len(members) > 1:
        members[ALL_READERS] = [reader for readers in list(members.values()) for reader in readers]
    inferences = []
    for group, readers in members.items():
        calls = [
            ReaderCalls(
                reader=label(reader),
                trials=tuple(
                    (case_key(image_id=image, image_class=truth, subject_id=subject), truth, call)
                    for truth, call, image, subject in called[reader]
                ),
            )
            for reader in readers
        ]
        inferences.append(
            GroupInference(
                group=group,
                readers=tuple(label(reader) for reader in readers),
                accuracy=orh_group_interval(calls, metric="accuracy"),
                balanced_accuracy=orh_group_interval(calls, metric="balanced_accuracy"),
            )
        )
    return inferences

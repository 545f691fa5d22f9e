"""Ingest T1-weighted volumes from files, align them to the template, optionally write their slices."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from generator.ingest import dataset_get_or_create, volumes_ingest
from generator.models import Volume
from generator.uploads import upload_job_create_from_paths
from generator.volumes import volume_align, volume_slice_source
from readerstudy.core.errors import ApplicationError
from readerstudy.core.follow import job_follow


class Command(BaseCommand):
    help = (
        "Ingest T1-weighted volumes (NIfTI .nii/.nii.gz, a DICOM series folder, or a .zip of one series) into a "
        "dataset, then align each to the MNI152 template. Bad files are reported; the good ones are kept."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", type=Path, help="files or DICOM folders")
        parser.add_argument("--dataset", required=True, help="dataset name (created if new)")
        parser.add_argument("--fov-mm", type=float, default=None, help="field of view of a new dataset (default 180)")
        parser.add_argument(
            "--subject",
            "--label",
            dest="label",
            action="append",
            default=[],
            metavar="FILE=LABEL",
            help="the subject (person) a file shows; repeat per file. Unnamed DICOM series link by a keyed hash "
            "of their patient ID; other unnamed files become new subjects",
        )
        parser.add_argument(
            "--queue",
            action="store_true",
            help="store the files and ingest (and align) them on a worker: an upload job, as the page and the API "
            "make; prints its id at once",
        )
        parser.add_argument("--wait", action="store_true", help="with --queue: follow the job until it ends")
        parser.add_argument(
            "--no-align", action="store_true", help="ingest only; align later (the admin's volume list: 'Align again')"
        )
        parser.add_argument("--materialise", type=Path, metavar="DIR", help="also write the dataset's slices here")
        parser.add_argument("--size", type=int, choices=[64, 128, 256], default=128, help="slice matrix size")

    def handle(self, *args, paths, dataset, fov_mm, label, queue, wait, no_align, materialise, size, **options) -> None:
        labels = self._subject_labels(label)
        missing = [str(path) for path in paths if not path.exists()]
        if missing:
            raise CommandError(f"No such file or folder: {', '.join(missing)}")
        if queue and (materialise or len(set(labels.values())) > 1):
            raise CommandError("--queue ingests on a worker: without --materialise, and with one --subject at most.")
        try:
            target = dataset_get_or_create(name=dataset, fov_mm=fov_mm)
            if queue:
                subject_label = next(iter(labels.values()), "")
                self._queue(target, paths, subject_label=subject_label, align=not no_align, wait=wait)
                return
        except ApplicationError as error:
            raise CommandError(str(error)) from error

        with tqdm(total=len(paths), desc="ingest", unit="file", file=sys.stderr) as bar:

            def report(result) -> None:
                bar.update(1)
                style = {"stored": self.style.SUCCESS, "duplicate": self.style.WARNING}.get(
                    result.outcome, self.style.ERROR
                )
                bar.write(style(f"{result.outcome:>9}  {result.name}: {result.message}"), file=sys.stdout)

            results = volumes_ingest(
                dataset=target, files=[(path, path.name) for path in paths], subject_labels=labels, on_result=report
            )

        stored = [result.volume for result in results if result.outcome == "stored"]
        if not no_align:
            self._align(stored)
        failed = [result for result in results if result.outcome == "error"]
        self.stdout.write(
            f"{len(stored)} stored, {sum(r.outcome == 'duplicate' for r in results)} already present, "
            f"{len(failed)} refused."
        )
        if materialise:
            self._materialise(target, materialise, size)
        if failed:
            raise CommandError(f"{len(failed)} file(s) were refused (see above); the others were kept.")

    @staticmethod
    def _subject_labels(items: list[str]) -> dict[str, str]:
        labels = {}
        for item in items:
            name, _, subject = item.partition("=")
            if not subject:
                raise CommandError(f"--subject takes FILE=LABEL, not {item!r}.")
            labels[Path(name).name] = subject
        return labels

    def _queue(self, dataset, paths: list[Path], *, subject_label: str, align: bool, wait: bool) -> None:
        job = upload_job_create_from_paths(dataset=dataset, paths=paths, subject_label=subject_label, align=align)
        self.stdout.write(f"Upload job {job.pk}: {len(paths)} file(s) stored; a worker ingests and aligns them.")
        if not wait:
            return
        job = job_follow(job, label="ingest", unit="file")
        styles = {"stored": self.style.SUCCESS, "duplicate": self.style.WARNING}
        for result in job.results:
            style = styles.get(result["outcome"], self.style.ERROR)
            self.stdout.write(style(f"{result['outcome']:>9}  {result['name']}: {result['message']}"))
        failed = sum(result["outcome"] == "error" for result in job.results)
        if failed:
            raise CommandError(f"{failed} file(s) were refused (see above); the others were kept.")

    def _align(self, volumes: list) -> None:
        for volume in tqdm(volumes, desc="align", unit="volume", file=sys.stderr):
            try:
                volume_align(volume=volume)
            except Exception as error:  # one volume's failed registration must not cost the others
                self.stdout.write(self.style.ERROR(f"   failed  {volume}: alignment failed: {error}"))

    def _materialise(self, dataset, out_dir: Path, size: int) -> None:
        from generator.ml.streaming import materialise_shards

        ready = list(dataset.volumes.filter(status=Volume.Status.READY))
        if not ready:
            raise CommandError(f"Dataset {dataset} has no aligned volume to slice.")
        sources = [volume_slice_source(volume=volume) for volume in ready]
        written = materialise_shards(sources, out_dir, matrix_size=size, fov_mm=dataset.fov_mm)
        self.stdout.write(f"Wrote {len(written)} file(s) of slices to {out_dir}.")

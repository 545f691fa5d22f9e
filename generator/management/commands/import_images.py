"""Import images made by any generator (or a group's own real slices) into the bank."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from generator.bank_import import images_import, subject_manifest_read
from readerstudy.core.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Import 2D images (PNG/TIFF 8- or 16-bit, NumPy .npy, 2D NIfTI) into the bank through the same renderer. "
        "Integers map their type's full range to [-1, 1]; floats must lie in [-1, 1] or [0, 1]. Real images "
        "name the person they show: --subject for all, or --manifest file,subject."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--generator", required=True, help="the generator's name (or the real images' source)")
        parser.add_argument("--class", dest="image_class", choices=["real", "synthetic"], required=True)
        parser.add_argument("--note", default="")
        parser.add_argument("--size", type=int, help="refuse images of any other matrix size")
        parser.add_argument("--subject", default="", help="real images: the person all these files show")
        parser.add_argument(
            "--manifest", type=Path, help="real images of several people: a CSV with columns file,subject"
        )

    def handle(self, *args, paths, generator, image_class, note, size, subject, manifest, **options) -> None:
        missing = [str(p) for p in [*paths, *([manifest] if manifest else [])] if not p.is_file()]
        if missing:
            raise CommandError(f"No such file: {', '.join(missing)}")
        try:
            subject_labels = subject_manifest_read(manifest.read_text(encoding="utf-8")) if manifest else None
            results = images_import(
                files=[(p, p.name) for p in paths],
                generator_name=generator,
                image_class=image_class,
                note=note,
                expected_size=size,
                subject_label=subject,
                subject_labels=subject_labels,
            )
        except ApplicationError as error:
            raise CommandError(str(error)) from error
        for result in results:
            style = {"imported": self.style.SUCCESS, "duplicate": self.style.WARNING}.get(
                result.outcome, self.style.ERROR
            )
            self.stdout.write(style(f"{result.outcome:>9}  {result.name}: {result.message}"))
        refused = [r for r in results if not r.ok]
        duplicates = sum(r.outcome == "duplicate" for r in results)
        imported = len(results) - len(refused) - duplicates
        self.stdout.write(f"{imported} imported, {duplicates} already in the bank, {len(refused)} refused.")
        if refused:
            raise CommandError(f"{len(refused)} file(s) were refused (see above); the others were imported.")

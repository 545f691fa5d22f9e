"""Import images made by any generator (or a group's own real slices) into the bank."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from generator.bank import images_import
from readerstudy.core.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Import 2D images (PNG/TIFF 8- or 16-bit, NumPy .npy, 2D NIfTI) into the bank through the same renderer. "
        "Integers map their type's full range to [-1, 1]; floats must lie in [-1, 1] or [0, 1]."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--generator", required=True, help="the generator's name (or the real images' source)")
        parser.add_argument("--class", dest="image_class", choices=["real", "synthetic"], required=True)
        parser.add_argument("--note", default="")
        parser.add_argument("--size", type=int, help="refuse images of any other matrix size")

    def handle(self, *args, paths, generator, image_class, note, size, **options) -> None:
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise CommandError(f"No such file: {', '.join(missing)}")
        try:
            results = images_import(
                files=[(p, p.name) for p in paths],
                generator_name=generator,
                image_class=image_class,
                note=note,
                expected_size=size,
            )
        except ApplicationError as error:
            raise CommandError(str(error)) from error
        for result in results:
            style = self.style.SUCCESS if result.ok else self.style.ERROR
            self.stdout.write(style(f"{'imported' if result.ok else 'refused':>9}  {result.name}: {result.message}"))
        refused = [r for r in results if not r.ok]
        self.stdout.write(f"{len(results) - len(refused)} imported, {len(refused)} refused.")
        if refused:
            raise CommandError(f"{len(refused)} file(s) were refused (see above); the others were imported.")

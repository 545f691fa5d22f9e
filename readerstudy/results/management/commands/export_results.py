"""Export a study's results: the table, the calls, the iMRMC file or the audit bundle."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from readerstudy.reading.studies import StudyError, study_get
from readerstudy.results.exports import calls_csv, study_bundle, table_csv
from readerstudy.results.scoring import imrmc_text

EXPORTS = {
    "table": lambda study: table_csv(study=study).encode(),
    "calls": lambda study: calls_csv(study=study).encode(),
    "imrmc": lambda study: imrmc_text(study=study).encode(),
    "bundle": lambda study: study_bundle(study=study),
}


class Command(BaseCommand):
    help = (
        "Export a study's results: table (table.csv, a row per reader and group), calls (calls.csv, a row per "
        "trial), imrmc (iMRMC input) or bundle (a zip to audit or re-run the analysis). Same files as the API's."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("study", help="the study's name or id")
        parser.add_argument("--format", choices=list(EXPORTS), default="table")
        parser.add_argument("--out", type=Path, help="file to write (default: standard output; required for bundle)")

    def handle(self, *args, study, format, out, **options) -> None:
        try:
            found = study_get(study)
        except StudyError as error:
            raise CommandError(str(error)) from error
        if format == "bundle" and out is None:
            raise CommandError("A bundle is a zip file: give --out FILE.zip.")
        data = EXPORTS[format](found)
        if out is None:
            sys.stdout.buffer.write(data)
            return
        try:
            out.write_bytes(data)
        except OSError as error:
            raise CommandError(f"Cannot write {out}: {error}") from error
        self.stderr.write(f"Wrote {out} ({len(data):,} bytes).")

"""Create a reader study with the paper's protocol as defaults; optionally fill its pools and open it."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from readerstudy.core.errors import ApplicationError
from readerstudy.reading.pools import study_pools_from_bank
from readerstudy.reading.sessions import study_open
from readerstudy.reading.studies import study_create, study_researchers_add


class Command(BaseCommand):
    help = (
        "Create a blinded real-or-synthetic study (defaults: the paper's 50 images, 20-30 synthetic, 10 s, "
        "10 training images with feedback)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--instructions", default="", help="text shown before reading")
        parser.add_argument("--consent-file", type=Path, help="a text file readers must accept first")
        parser.add_argument("--images-per-session", type=int, default=50)
        parser.add_argument("--synthetic-min", type=int, default=20)
        parser.add_argument("--synthetic-max", type=int, default=30)
        parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per image; 0 = unlimited")
        parser.add_argument("--training-images", type=int, default=10)
        parser.add_argument("--no-training-feedback", action="store_true", help="do not show training answers")
        parser.add_argument("--fixed-set", action="store_true", help="every reader gets the same images")
        parser.add_argument("--ask-confidence", action="store_true", help="a 1-5 confidence with each call")
        parser.add_argument("--ask-reason", action="store_true", help="an optional reason with each call")
        parser.add_argument("--display-size", type=int, default=512, help="shown image size in CSS pixels")
        parser.add_argument("--show-score-after", action="store_true")
        parser.add_argument(
            "--pools-from-bank",
            action="store_true",
            help="pools from every active bank image (training drawn at random, from people of its own)",
        )
        parser.add_argument(
            "--matrix-size",
            type=int,
            help="with --pools-from-bank: the images of this size (when the bank mixes sizes)",
        )
        parser.add_argument("--seed", type=int, help="seed of the pool split and fixed sets")
        parser.add_argument("--open", action="store_true", help="open the study for reading at once")
        parser.add_argument(
            "--researcher",
            action="append",
            default=[],
            metavar="USERNAME",
            help="a researcher who sees the study's results (repeat; admins see every study)",
        )

    def handle(self, *args, **options) -> None:
        consent = ""
        if options["consent_file"]:
            try:
                consent = options["consent_file"].read_text(encoding="utf-8")
            except OSError as error:
                raise CommandError(f"Cannot read the consent file: {error}") from error
        try:
            study = study_create(
                name=options["name"],
                instructions=options["instructions"],
                consent_text=consent,
                images_per_session=options["images_per_session"],
                synthetic_min=options["synthetic_min"],
                synthetic_max=options["synthetic_max"],
                time_limit_s=options["time_limit"] or None,
                training_images=options["training_images"],
                training_feedback=not options["no_training_feedback"],
                fixed_set=options["fixed_set"],
                ask_confidence=options["ask_confidence"],
                ask_reason=options["ask_reason"],
                display_size_px=options["display_size"],
                show_score_after=options["show_score_after"],
            )
            self.stdout.write(f"Created study {study.pk}: {study.name} (draft).")
            if options["researcher"]:
                study_researchers_add(study=study, usernames=options["researcher"])
                self.stdout.write(f"Its results are open to: {', '.join(options['researcher'])}.")
            if options["pools_from_bank"]:
                counts = study_pools_from_bank(study=study, seed=options["seed"], matrix_size=options["matrix_size"])
                self.stdout.write(f"Pools: {counts}")
            if options["open"]:
                study_open(study=study, seed=options["seed"])
                self.stdout.write(f"Opened study {study.pk} for reading.")
        except ApplicationError as error:  # a study, session or pools refused, or evidence frozen
            raise CommandError(str(error)) from error

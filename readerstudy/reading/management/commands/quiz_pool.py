"""Fill the public quiz pool with bank images no study uses."""

from django.core.management.base import BaseCommand, CommandError

from readerstudy.reading.quiz import QuizError, quiz_pool_counts, quiz_pool_fill


class Command(BaseCommand):
    help = (
        "Move N random active images per class that no study uses into the public quiz pool (kept out of "
        "every study from then on), or show the pool's size."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--per-class", type=int, help="images of each class to add")
        parser.add_argument("--seed", type=int)

    def handle(self, *args, per_class, seed, **options) -> None:
        if per_class:
            try:
                quiz_pool_fill(per_class=per_class, seed=seed)
            except QuizError as error:
                raise CommandError(str(error)) from error
        self.stdout.write(f"Quiz pool: {quiz_pool_counts()}")

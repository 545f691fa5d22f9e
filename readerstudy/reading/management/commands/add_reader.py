"""Add a reader to a study and print (or e-mail) their invitation link."""

from django.core.management.base import BaseCommand, CommandError

from readerstudy.reading.models import Reader
from readerstudy.reading.readers import ReaderError, invitation_send, invitation_url, reader_add
from readerstudy.reading.studies import StudyError, study_get


class Command(BaseCommand):
    help = "Add a reader to a study (creating their account) and print the invitation link that sets their password."

    def add_arguments(self, parser) -> None:
        parser.add_argument("study", help="the study's name or id")
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument("--role", default=Reader.Role.OTHER, choices=Reader.Role.values)
        parser.add_argument("--years", type=int, default=0, help="years of experience")
        parser.add_argument("--send", action="store_true", help="e-mail the invitation (Django's e-mail backend)")
        parser.add_argument("--base-url", help="the site's address for the link (default: settings.SITE_URL)")

    def handle(self, *args, study, username, email, role, years, send, base_url, **options) -> None:
        try:
            reader = reader_add(
                study=study_get(study), username=username, email=email, role=role, years_experience=years
            )
            url = (
                invitation_send(reader=reader, base_url=base_url)
                if send
                else invitation_url(reader=reader, base_url=base_url)
            )
        except (StudyError, ReaderError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Added {username} to {reader.study} as {reader.get_role_display()}.")
        self.stdout.write(("E-mailed invitation: " if send else "Invitation link: ") + url)

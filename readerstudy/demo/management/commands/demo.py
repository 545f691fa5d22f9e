"""Set up the demo on the embedded default and serve it: `make demo` runs this.

Migrate and create the accounts, start a worker and the web server, then run the demo pipeline
on the worker (readerstudy/demo/pipeline.py: template → aligned volume → modern-64 DCGAN → bank → demo
study), each step with a progress bar, and print every login."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from readerstudy.core.accounts import account_ensure
from readerstudy.core.follow import job_follow
from readerstudy.core.roles import Role
from readerstudy.demo.pipeline import DEMO_READERS, SIMULATED_READER, DemoSizes, demo_pipeline

DEMO_ACCOUNTS = (
    ("demo-admin", "synthread-admin", Role.ADMIN),
    ("demo-researcher", "synthread-researcher", Role.RESEARCHER),
)


class Command(BaseCommand):
    help = (
        "Migrate, create the demo accounts, start a worker and the web server, run the demo pipeline "
        "(template, DCGAN, bank, study; reused when it exists) and serve (Ctrl-C stops both)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-serve", action="store_true", help="set up only; start nothing")
        parser.add_argument("--bind", default="127.0.0.1:8000", help="address for the web server")
        parser.add_argument("--ready-timeout", type=float, default=180, help="seconds to wait for a healthy start")
        parser.add_argument("--tiny", action="store_true", help="a tiny pipeline (few steps, few images): for tests")
        parser.add_argument("--no-pipeline", action="store_true", help="serve without building the demo study")
        parser.add_argument(
            "--force",
            action="store_true",
            help="run on a database other than the embedded SQLite (it resets the demo accounts' passwords)",
        )

    def handle(
        self,
        *args,
        no_serve: bool,
        bind: str,
        ready_timeout: float,
        tiny: bool,
        no_pipeline: bool,
        force: bool,
        **options,
    ) -> None:
        database = connection.settings_dict
        if database["ENGINE"] != "django.db.backends.sqlite3" and not force:
            # The demo sets demo-admin's password to the one the README prints: on a real database
            # that is an admin account anyone can log in to.
            raise CommandError(
                f"manage.py demo runs on the embedded SQLite only; DATABASE_URL points at "
                f"{connection.vendor} database {database['NAME']!r}, where it would reset demo-admin to the "
                "password printed in the README. Unset DATABASE_URL for the embedded default, or pass --force "
                "if this database is a throwaway."
            )
        self.sizes = DemoSizes.tiny() if tiny else DemoSizes()
        self.pipeline = not no_pipeline
        Path(settings.MEDIA_ROOT).mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        for username, password, role in DEMO_ACCOUNTS:
            account_ensure(username=username, password=password, role=role)
        if no_serve:
            self._print_logins(url=None)
            return
        self._serve(bind=bind, ready_timeout=ready_timeout)

    def _print_logins(self, url: str | None) -> None:
        if url:
            self.stdout.write(self.style.SUCCESS(f"\nSynthRead demo is ready: {url}"))
        self.stdout.write("Demo logins (username / password / role):")
        for username, password, role in DEMO_ACCOUNTS:
            self.stdout.write(f"  {username:<22} {password:<22} {role.value}")
        if self.pipeline and url:
            for username, password, reader_role, years in DEMO_READERS:
                self.stdout.write(f"  {username:<22} {password:<22} readers ({reader_role.label}, {years} years)")
            self.stdout.write(
                f"  ({SIMULATED_READER} is a simulated reader who has already finished: results show numbers at once.)"
            )
            self.stdout.write(f"Read as a reader: {url}reading/   Results: {url}results/   Quiz: {url}{self.quiz_url}")
        if url:
            self.stdout.write("Press Ctrl-C to stop the server and the worker.\n")

    def _serve(self, *, bind: str, ready_timeout: float) -> None:
        root = Path(settings.BASE_DIR)
        log_dir = Path(settings.VAR_DIR) / "log"
        log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHON": sys.executable, "WEB_BIND": bind}
        worker_log = log_dir / "worker.log"
        self.stdout.write(f"Starting a Celery worker (log: {worker_log}) and the web server on {bind} ...")
        # The worker's chatter goes to its log file, so the terminal shows the server and the logins.
        with worker_log.open("ab") as worker_output:
            worker = subprocess.Popen(
                [str(root / "bin" / "worker"), "all", "--loglevel", "INFO"],
                env=env,
                start_new_session=True,
                stdout=worker_output,
                stderr=subprocess.STDOUT,
            )
        web = subprocess.Popen([str(root / "bin" / "web")], env=env, start_new_session=True)
        processes = {"worker": worker, "web server": web}
        # Stopped by a supervisor (SIGTERM) as by Ctrl-C: the worker and the server go with us.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            self._wait_until_healthy(f"http://{bind}/healthz", processes, ready_timeout)
            if self.pipeline:
                started = time.monotonic()
                study = demo_pipeline(sizes=self.sizes, follow=job_follow)
                self.stdout.write(f"Demo study {study.pk} ready ({time.monotonic() - started:.0f} s for the pipeline).")
                self.quiz_url = f"quiz/{study.pk}/"
            self._print_logins(url=f"http://{bind}/")
            while True:
                for name, process in processes.items():
                    if process.poll() is not None:
                        raise CommandError(
                            f"The {name} stopped (exit code {process.returncode}); see the output above."
                        )
                time.sleep(1)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping ...")
        finally:
            for process in processes.values():
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            for process in processes.values():
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)

    def _wait_until_healthy(self, url: str, processes: dict, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            for name, process in processes.items():
                if process.poll() is not None:
                    raise CommandError(f"The {name} failed to start (exit code {process.returncode}).")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    report = json.load(response)
                if report.get("ok"):
                    return
            except urllib.error.HTTPError as error:
                last = error.read().decode(errors="replace")
            except (urllib.error.URLError, OSError) as error:
                last = str(error)
            time.sleep(1)
        raise CommandError(f"The demo did not become healthy within {timeout:.0f} s: {last}")

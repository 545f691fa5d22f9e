"""Results (readerstudy/results/scoring.py, exports.py, the results API and page): table.csv agrees with
calls.csv, training calls and expired trials stay out of TP..TN, the iMRMC header matches its
rows, one CSV code path for the API and the command, the bundle holds what an auditor needs,
and only researchers and admins see any of it."""

import csv
import io
import platform
import zipfile
from collections import Counter
from datetime import timedelta
from importlib import metadata

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone

from readerstudy.reading.models import Reader, Study, Trial
from readerstudy.reading.sessions import session_build, study_open
from readerstudy.reading.trials import call_record, trial_current, trial_serve
from tests.factories import StudyFactory, UserFactory, researcher_of

pytestmark = pytest.mark.django_db


def _read(reader: Reader, choose, *, expire_positions=()) -> None:
    """Read a whole session: ``choose(truth) -> call``; the trials at ``expire_positions`` are left
    until their time runs out."""
    session = session_build(reader=reader, seed=reader.pk)
    now = timezone.now()
    while (trial := trial_current(session=session, now=now)) is not None:
        trial_serve(session=session, token=trial.token, now=now)
        if trial.position in expire_positions:
            now += timedelta(seconds=30)
            continue
        call, confidence = choose(trial.bank_image.image_class)
        call_record(
            session=session, token=trial.token, call=call, confidence=confidence, now=now + timedelta(seconds=2)
        )
        now += timedelta(seconds=3)


@pytest.fixture
def study() -> Study:
    study = StudyFactory(
        name="Results study", images_per_session=10, synthetic_min=4, synthetic_max=6, ask_confidence=True, pools=(8, 1)
    )
    study_open(study=study)
    rng = np.random.default_rng(0)
    readers = [
        ("nr1", "neuroradiologist", lambda truth: (truth, 5)),  # always right
        ("body1", "radiologist", lambda truth: ("real", 3)),  # always "real"
        ("res1", "resident", lambda truth: (str(rng.choice(["real", "synthetic"])), int(rng.integers(1, 6)))),
    ]
    for username, role, choose in readers:
        reader = Reader.objects.create(user=UserFactory(username=username, role="readers"), study=study, role=role)
        _read(reader, choose, expire_positions={5} if username == "res1" else ())
    return study


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_table_counts_equal_a_recomputation_from_calls_and_leave_out_training_and_expired(client, study):
    client.force_login(researcher_of(study))
    table = _csv(client.get(f"/api/v1/studies/{study.pk}/results/table/?format=csv").content.decode())
    calls = _csv(client.get(f"/api/v1/studies/{study.pk}/results/calls/?format=csv").content.decode())
    assert len(calls) == 3 * 12 and Counter(c["phase"] for c in calls) == {"main": 30, "training": 6}
    cell = {
        ("real", "real"): "tp",
        ("real", "synthetic"): "fn",
        ("synthetic", "real"): "fp",
        ("synthetic", "synthetic"): "tn",
    }
    for row in table[:3]:
        mine = [c for c in calls if c["reader"] == row["reader"] and c["phase"] == "main"]
        expected = Counter(cell[c["truth"], c["call"]] for c in mine if c["expired"] == "False")
        assert {k: int(row[k]) for k in ("tp", "fn", "fp", "tn")} == {k: expected[k] for k in ("tp", "fn", "fp", "tn")}
        assert int(row["expired"]) == sum(c["expired"] == "True" for c in mine)
    by_reader = {row["reader"]: row for row in table}
    assert float(by_reader["nr1"]["balanced_accuracy"]) == 1.0 and float(by_reader["nr1"]["roc_auc"]) == 1.0
    assert float(by_reader["body1"]["balanced_accuracy"]) == 0.5  # "always real" is chance, whatever its accuracy
    assert int(by_reader["res1"]["expired"]) == 1
    assert {"group: neuroradiologists", "group: other readers", "group: all readers"} <= set(by_reader)
    # Two readers get an interval (ORH, df from the data), one reader only the mean.
    others, alone = by_reader["group: other readers"], by_reader["group: neuroradiologists"]
    assert "Obuchowski-Rockette-Hillis" in others["note"] and float(others["balanced_accuracy_df"]) >= 1
    low, high, mean = (float(others[f"balanced_accuracy{k}"]) for k in ("_ci_low", "_ci_high", ""))
    assert 0 <= low <= mean <= high <= 1 and float(others["balanced_accuracy_se"]) > 0
    assert alone["balanced_accuracy_ci_low"] == "" and "One reader" in alone["note"]
    assert int(by_reader["group: all readers"]["n_readers"]) == 3


def test_the_imrmc_header_counts_match_its_rows(client, study):
    client.force_login(UserFactory(role="admins"))
    text = client.get(f"/api/v1/studies/{study.pk}/results/imrmc/").content.decode()
    header, data = text.split("BEGIN DATA:\n")
    numbers = dict(line.split(": ") for line in header.splitlines() if line[:3] in ("NR:", "N0:", "N1:", "NM:"))
    rows = [line.split(",") for line in data.strip().splitlines()]
    truth = [r for r in rows if r[0] == "-1"]
    scores = [r for r in rows if r[0] != "-1"]
    assert int(numbers["NR"]) == len({r[0] for r in scores}) == 3
    assert int(numbers["N1"]) == sum(r[3] == "1" for r in truth) and int(numbers["N0"]) == sum(
        r[3] == "0" for r in truth
    )
    assert {r[1] for r in scores} <= {r[1] for r in truth} and all(r[2] == "0" for r in truth)
    assert len(scores) == 30 - 1  # the expired trial has no score
    assert {int(r[3]) for r in scores} <= set(range(1, 11))  # confidence folded into 1..10


def test_the_command_writes_the_same_files_as_the_api(client, study, tmp_path, capsysbinary):
    client.force_login(researcher_of(study))
    for name in ("table", "calls"):
        call_command("export_results", study.name, "--format", name, "--out", str(tmp_path / f"{name}.csv"))
        api = client.get(f"/api/v1/studies/{study.pk}/results/{name}/?format=csv")
        assert api["Content-Disposition"].startswith("attachment")
        assert (tmp_path / f"{name}.csv").read_text() == api.content.decode()
    call_command("export_results", str(study.pk), "--format", "imrmc")
    assert (
        capsysbinary.readouterr().out.decode()
        == client.get(f"/api/v1/studies/{study.pk}/results/imrmc/").content.decode()
    )


def test_the_bundle_holds_what_an_auditor_needs(study, tmp_path):
    call_command("export_results", study.name, "--format", "bundle", "--out", str(tmp_path / "b.zip"))
    with zipfile.ZipFile(tmp_path / "b.zip") as bundle:
        names = {name.split("/", 1)[1] for name in bundle.namelist()}
        manifest = _csv(bundle.read("Results-study/bank_manifest.csv").decode())
        sessions = bundle.read("Results-study/sessions.json").decode()
        packages = bundle.read("Results-study/packages.txt").decode().splitlines()
    assert names == {
        "README.txt", "study.json", "sessions.json", "bank_manifest.csv", "generators.json", "code_version.txt",
        "packages.txt", "audit_log.json", "table.csv", "calls.csv", "study.imrmc",
    }  # fmt: skip
    seen = set(Trial.objects.filter(session__reader__study=study).values_list("bank_image_id", flat=True))
    assert sorted(int(row["id"]) for row in manifest) == sorted(seen)  # every image any reader saw, once
    assert all(row["pixel_checksum"] for row in manifest) and '"seed"' in sessions
    # The installed distributions, as importlib.metadata reports them, after the Python and platform.
    assert packages[0].startswith(f"# Python {platform.python_version()} ")
    for name in ("Django", "djangorestframework", "numpy"):
        assert f"{name}=={metadata.version(name)}" in packages
    assert packages[1:] == sorted(packages[1:], key=lambda line: line.split("==")[0].lower())


def test_the_results_page_shows_the_table_and_plots(client, study):
    client.force_login(researcher_of(study))
    page = client.get(f"/results/{study.pk}/").content.decode()
    assert "nr1" in page and "group: neuroradiologists" in page and "How to read this table" in page
    for plot in ("accuracy", "confusion", "roc"):
        response = client.get(f"/results/{study.pk}/{plot}.png")
        assert response["Content-Type"] == "image/png" and response.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Results study" in client.get("/results/").content.decode()


def test_only_researchers_and_admins_see_results(client, study):
    paths = [f"/results/{study.pk}/", f"/results/{study.pk}/accuracy.png", f"/api/v1/studies/{study.pk}/results/table/"]
    for path in paths:
        assert client.get(path).status_code in (302, 403)
        if path.startswith("/results"):
            assert "/accounts/login/" in client.get(path)["Location"]
    client.force_login(Reader.objects.first().user)
    for path in [*paths, f"/api/v1/studies/{study.pk}/results/calls/?format=csv", "/results/"]:
        assert client.get(path).status_code == 403, path


def _bundle(study: Study) -> dict:
    from readerstudy.results.exports import study_bundle

    with zipfile.ZipFile(io.BytesIO(study_bundle(study=study))) as bundle:
        return {name.split("/", 1)[1]: bundle.read(name).decode() for name in bundle.namelist()}


def test_exports_of_an_open_study_hold_only_ended_trials(client):
    """An unserved or running trial's truth would tell what is coming; one past its limit that
    nobody marked yet (a closed tab) is over, and counts as expired."""
    study = study_open(
        study=StudyFactory(name="Running", images_per_session=6, synthetic_min=3, synthetic_max=3, pools=(4, 1))
    )
    reader = Reader.objects.create(user=UserFactory(role="readers"), study=study)
    session = session_build(reader=reader, seed=1)
    now = timezone.now() - timedelta(minutes=5)
    answered = trial_serve(session=session, token=trial_current(session=session, now=now).token, now=now)
    call_record(session=session, token=answered.token, call="real", now=now + timedelta(seconds=1))
    abandoned = trial_current(session=session, now=now + timedelta(seconds=2))
    trial_serve(session=session, token=abandoned.token, now=now + timedelta(seconds=2))  # then the tab closed
    unserved = set(session.trials.exclude(pk__in=[answered.pk, abandoned.pk]).values_list("bank_image_id", flat=True))

    client.force_login(researcher_of(study))
    calls = _csv(client.get(f"/api/v1/studies/{study.pk}/results/calls/?format=csv").content.decode())
    assert {(int(c["case"]), c["call"], c["expired"]) for c in calls} == {
        (answered.bank_image_id, "real", "False"),
        (abandoned.bank_image_id, "", "True"),
    }
    files = _bundle(study)
    shown = {int(row["id"]) for row in _csv(files["bank_manifest.csv"])}
    assert shown == {answered.bank_image_id, abandoned.bank_image_id} and not shown & unserved
    [orders] = __import__("json").loads(files["sessions.json"])
    assert set(orders["training_order"] + orders["main_order"]) == shown
    assert orders["images_not_yet_ended"] == len(unserved)
    assert not {str(image) for image in unserved} & {c["case"] for c in _csv(files["calls.csv"])}


def test_csv_cells_a_spreadsheet_would_run_are_neutralised_and_numbers_are_not():
    from readerstudy.results.exports import rows_to_csv

    text = rows_to_csv(
        [{"reason": '=HYPERLINK("http://x")', "other": "+1", "at": "@SUM(A1)", "tab": "\tx", "n": -1, "ok": "edges"}],
        ["reason", "other", "at", "tab", "n", "ok"],
    )
    row = _csv(text)[0]
    assert row == {
        "reason": '\'=HYPERLINK("http://x")',
        "other": "'+1",
        "at": "'@SUM(A1)",
        "tab": "'\tx",
        "n": "-1",
        "ok": "edges",
    }


def test_the_imrmc_header_never_holds_a_count_from_the_study_name(client):
    from readerstudy.results.scoring import imrmc_text

    study = study_open(study=StudyFactory(name="Pilot NR: 3\nN0:9 begin data: x", pools=(3, 1)))
    text = imrmc_text(study=study)
    header = text.split("BEGIN DATA:")[0]
    counted = [line for line in header.splitlines() if line.split(":")[0].strip().upper() in {"NR", "N0", "N1", "NM"}]
    assert [line.split(":")[0] for line in counted] == ["NR", "N0", "N1", "NM"]  # only the real counts
    assert "NR -" in header and "N0 -" in header and text.count("BEGIN DATA:") == 1

"""The reader's API and image endpoint: per-trial tokens usable only by their reader, identical
headers and byte lengths for both classes, feedback only in training."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from readerstudy.reading.models import Reader, Study
from tests.factories import StudyFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    return StudyFactory(
        name="api",
        images_per_session=6,
        synthetic_min=3,
        synthetic_max=3,
        state=Study.State.OPEN,
        pools=(4, 1),
        pools__image_size=64,
    )


def _reader(client, study):
    user = UserFactory(role="readers")
    Reader.objects.create(user=user, study=study)
    client.force_login(user)
    return user


def test_a_reader_reads_a_whole_session_through_the_api(client, study):
    _reader(client, study)
    responses = []
    while True:
        state = client.get(f"/api/v1/me/session?study={study.pk}").json()
        if state["phase"] == "finished":
            break
        image = client.get(state["image_url"])
        assert image.status_code == 200
        responses.append((state["phase"], image))
        result = client.post(
            f"/api/v1/me/calls?study={study.pk}",
            {"token": state["token"], "call": "real"},
            content_type="application/json",
        )
        assert result.status_code == 201
        body = result.json()
        if state["phase"] == "training":
            assert body["truth"] in ("real", "synthetic")  # feedback after each training call
        else:
            assert body["truth"] is None  # never in the main phase
        assert "class" not in state and "real" not in state["image_url"] and "synthetic" not in state["image_url"]
    assert [phase for phase, _ in responses] == ["training"] * 2 + ["main"] * 6
    lengths = {len(image.content) for _, image in responses}
    headers = {tuple(sorted((k, v) for k, v in image.items() if k not in ("Date",))) for _, image in responses}
    assert len(lengths) == 1 and len(headers) == 1
    header_names = {name.lower() for name, _ in next(iter(headers))}
    assert "etag" not in header_names and "last-modified" not in header_names
    assert dict(next(iter(headers)))["Cache-Control"] == "no-store"


def test_each_calls_answer_carries_the_next_state_so_a_trial_takes_two_requests(
    client, study, django_assert_max_num_queries
):
    """What the reading page does: the session state once, then per trial its image and its call,
    whose answer says what comes next. Each request runs a few queries, whatever the session's
    length (once, the state ran one query per trial of the phase)."""
    _reader(client, study)
    state = client.get(f"/api/v1/me/session?study={study.pk}").json()
    places = []
    while state["phase"] != "finished":
        places.append((state["phase"], state["index"], state["total"]))
        assert state["remaining_s"] == study.time_limit_s  # its image is not served yet: its clock waits
        with django_assert_max_num_queries(10):  # savepoints included
            assert client.get(state["image_url"]).status_code == 200
        with django_assert_max_num_queries(14):
            answer = client.post(
                f"/api/v1/me/calls?study={study.pk}",
                {"token": state["token"], "call": "synthetic"},
                content_type="application/json",
            )
        assert answer.status_code == 201
        with django_assert_max_num_queries(8):
            asked = client.get(f"/api/v1/me/session?study={study.pk}").json()
        state = answer.json()["next"]
        assert state == asked
    assert places == [("training", 1, 2), ("training", 2, 2)] + [("main", i, 6) for i in range(1, 7)]


def test_a_readers_image_costs_no_role_query_and_the_repeated_queries_are_prepared(client, study):
    """The reader's own current trial proves the role (the image request once also read the
    user's groups), and PostgreSQL plans each repeated query once per connection, not per request
    (DATABASE_PREPARED_STATEMENTS: planning was about half of its work per request)."""
    _reader(client, study)
    for _ in range(8):
        state = client.get(f"/api/v1/me/session?study={study.pk}").json()
    with CaptureQueriesContext(connection) as image_queries:
        assert client.get(state["image_url"]).status_code == 200
    assert not [q["sql"] for q in image_queries.captured_queries if "auth_group" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [statement for (statement,) in cursor.fetchall()]
    assert any('FROM "django_session"' in statement for statement in prepared), prepared
    assert any('FROM "readerstudy_trial"' in statement for statement in prepared), prepared


def test_another_readers_token_and_dead_tokens_are_404(client, study):
    _reader(client, study)
    token = client.get(f"/api/v1/me/session?study={study.pk}").json()["token"]
    other = UserFactory(role="readers")
    Reader.objects.create(user=other, study=study)
    client.force_login(other)
    assert client.get(f"/reading/image/{token}").status_code == 404
    assert client.get("/reading/image/forged-token").status_code == 404
    response = client.post(
        f"/api/v1/me/calls?study={study.pk}", {"token": token, "call": "real"}, content_type="application/json"
    )
    assert response.status_code == 404


def test_bad_calls_are_400_and_a_changed_call_is_refused(client, study):
    _reader(client, study)
    state = client.get(f"/api/v1/me/session?study={study.pk}").json()
    client.get(state["image_url"])
    url = f"/api/v1/me/calls?study={study.pk}"
    assert (
        client.post(url, {"token": state["token"], "call": "unknown"}, content_type="application/json").status_code
        == 400
    )
    assert (
        client.post(
            url, {"token": state["token"], "call": "real", "confidence": 9}, content_type="application/json"
        ).status_code
        == 400
    )
    assert (
        client.post(url, {"token": state["token"], "call": "real"}, content_type="application/json").status_code == 201
    )
    assert (
        client.post(url, {"token": state["token"], "call": "real"}, content_type="application/json").status_code == 200
    )
    assert (
        client.post(url, {"token": state["token"], "call": "synthetic"}, content_type="application/json").status_code
        == 409
    )


def test_only_readers_of_the_study_get_a_session(client, study):
    client.force_login(UserFactory(role="readers"))
    assert client.get(f"/api/v1/me/session?study={study.pk}").status_code == 403
    client.force_login(UserFactory(role="researchers"))
    assert client.get("/reading/image/anything").status_code == 403

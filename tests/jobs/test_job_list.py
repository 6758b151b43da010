"""GET /v1/jobs: newest first, cursor pages, filters, and only the caller's account."""

import base64
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from jobs.models import Job, JobStatus
from tests.support.jobs import make_job


def jobs_at(account, count, **fields) -> list[Job]:
    """`count` jobs a minute apart, returned newest first."""
    start = timezone.now() - timedelta(days=1)
    made = [make_job(account, name=f"job-{i}", created_at=start + timedelta(minutes=i), **fields)
            for i in range(count)]
    return made[::-1]


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [job["id"] for job in response.json()["results"]]


def list_jobs(api, caller, query=""):
    return api.get(f"/v1/jobs{query}", **caller.headers)


def follow(api, caller, url):
    parts = urlsplit(url)
    return api.get(f"{parts.path}?{parts.query}", **caller.headers)


def test_jobs_are_listed_newest_first(api, operator):
    newest_first = jobs_at(operator.account, 3)
    assert ids(list_jobs(api, operator)) == [job.id for job in newest_first]


def test_jobs_created_in_the_same_instant_are_still_in_a_stable_order(api, operator):
    now = timezone.now()
    made = [make_job(operator.account, created_at=now) for _ in range(4)]
    first = ids(list_jobs(api, operator, "?page_size=2"))
    assert first == sorted((job.id for job in made), reverse=True)[:2]


def test_the_next_link_walks_every_job_once(api, operator):
    newest_first = jobs_at(operator.account, 5)
    seen, page = [], list_jobs(api, operator, "?page_size=2")
    while True:
        seen += ids(page)
        if not page.json()["next"]:
            break
        page = follow(api, operator, page.json()["next"])
    assert seen == [job.id for job in newest_first]


def test_a_job_created_between_pages_does_not_shift_the_next_page(api, operator):
    newest_first = jobs_at(operator.account, 4)
    first = list_jobs(api, operator, "?page_size=2")
    make_job(operator.account, name="late")
    second = follow(api, operator, first.json()["next"])
    assert ids(second) == [job.id for job in newest_first[2:]]


def test_the_next_link_keeps_the_filters(api, operator):
    jobs_at(operator.account, 3, labels={"team": "nlp"})
    jobs_at(operator.account, 3, labels={"team": "cv"})
    first = list_jobs(api, operator, "?label=team:nlp&page_size=2")
    assert parse_qs(urlsplit(first.json()["next"]).query)["label"] == ["team:nlp"]
    second = follow(api, operator, first.json()["next"])
    assert len(ids(second)) == 1
    assert Job.objects.get(id=ids(second)[0]).labels == {"team": "nlp"}


def test_page_size_is_clamped_to_the_maximum(api, operator):
    start = timezone.now() - timedelta(days=1)
    Job.objects.bulk_create([
        Job(account=operator.account, name=f"j{i}", backend="local", image="python", command=["true"],
            max_runtime_seconds=60, created_at=start + timedelta(seconds=i))
        for i in range(201)
    ])
    response = list_jobs(api, operator, "?page_size=1000000000")
    assert len(ids(response)) == 200
    assert response.json()["next"]
    assert len(ids(list_jobs(api, operator, "?page_size=" + "9" * 5000))) == 200


def test_the_default_page_is_50(api, operator):
    jobs_at(operator.account, 51)
    response = list_jobs(api, operator)
    assert len(ids(response)) == 50
    assert response.json()["next"]


@pytest.mark.parametrize("page_size", ["0", "-1", "abc", "", "1.5", "1e3", " 5", "\u00b2", "\u0663", "00"])
def test_a_page_size_that_is_not_a_positive_whole_number_is_400(api, operator, page_size):
    response = api.get("/v1/jobs", {"page_size": page_size}, **operator.headers)
    assert response.status_code == 400
    assert list(response.json()) == ["page_size"]


@pytest.mark.parametrize("cursor", [
    "garbage", "!!!!", "", "====", base64.b64encode(b"").decode(), base64.b64encode(b"x=1").decode(),
    base64.b64encode(b"o=1&o=2").decode(), base64.b64encode(b"o=1").decode() + "!",
    base64.b64encode(b"o=-5").decode(), base64.b64encode(b"p=not-a-time").decode(),
    base64.b64encode(b"o=x").decode(), base64.b64encode(b"r=yes").decode(),
    base64.b64encode(b"r=1&p=2024-13-45").decode(), base64.b64encode(b"p=\x00").decode(),
])
def test_a_tampered_cursor_is_400(api, operator, cursor):
    jobs_at(operator.account, 1)
    response = api.get("/v1/jobs", {"cursor": cursor}, **operator.headers)
    assert response.status_code == 400
    assert list(response.json()) == ["cursor"]


def test_filter_by_status(api, operator):
    pending = make_job(operator.account)
    canceled = make_job(operator.account, status=JobStatus.CANCELED)
    failed = make_job(operator.account, status=JobStatus.FAILED)
    assert ids(list_jobs(api, operator, "?status=CANCELED")) == [canceled.id]
    assert set(ids(list_jobs(api, operator, "?status=CANCELED&status=FAILED"))) == {canceled.id, failed.id}
    assert ids(list_jobs(api, operator, "?status=PENDING")) == [pending.id]


@pytest.mark.parametrize("status", ["RUNNING", "pending", "", "PENDING "])
def test_an_unknown_status_is_400(api, operator, status):
    response = api.get("/v1/jobs", {"status": status}, **operator.headers)
    assert response.status_code == 400
    assert list(response.json()) == ["status"]


def test_filter_by_backend(api, operator):
    local = make_job(operator.account, backend="local")
    make_job(operator.account, backend="sagemaker")
    assert ids(list_jobs(api, operator, "?backend=local")) == [local.id]
    assert ids(list_jobs(api, operator, "?backend=mainframe")) == []


def test_filter_by_name_is_exact(api, operator):
    wanted = make_job(operator.account, name="llama-sft-3")
    make_job(operator.account, name="llama-sft-30")
    make_job(operator.account, name="LLAMA-SFT-3")
    assert ids(list_jobs(api, operator, "?name=llama-sft-3")) == [wanted.id]


def test_filter_by_labels_matches_every_label_given(api, operator):
    both = make_job(operator.account, labels={"team": "nlp", "stage": "sft"})
    make_job(operator.account, labels={"team": "nlp", "stage": "rl"})
    make_job(operator.account, labels={"team": "cv"})
    make_job(operator.account)
    assert len(ids(list_jobs(api, operator, "?label=team:nlp"))) == 2
    assert ids(list_jobs(api, operator, "?label=team:nlp&label=stage:sft")) == [both.id]


def test_a_label_named_like_a_query_lookup_is_matched_as_a_label(api, operator):
    tagged = make_job(operator.account, labels={"contains": "x", "isnull": "y", "in": "z"})
    make_job(operator.account, labels={"team": "x"})
    for label in ("contains:x", "isnull:y", "in:z"):
        assert ids(list_jobs(api, operator, f"?label={label}")) == [tagged.id], label
    assert ids(list_jobs(api, operator, "?label=contains:other")) == []


def test_an_empty_label_value_matches_only_that_label_set_empty(api, operator):
    empty = make_job(operator.account, labels={"team": ""})
    make_job(operator.account)
    assert ids(list_jobs(api, operator, "?label=team:")) == [empty.id]


@pytest.mark.parametrize("label", ["team", "Team:nlp", "team:NLP", "a__b:x", ":x", "team:a b", "team=nlp"])
def test_a_bad_label_filter_is_400(api, operator, label):
    response = api.get("/v1/jobs", {"label": label}, **operator.headers)
    assert response.status_code == 400
    assert list(response.json()) == ["label"]


def test_another_accounts_jobs_never_appear(api, operator, outsider):
    ours = make_job(operator.account, labels={"team": "nlp"})
    make_job(outsider.account, labels={"team": "nlp"})
    make_job(outsider.account, status=JobStatus.FAILED)
    assert ids(list_jobs(api, operator)) == [ours.id]
    assert ids(list_jobs(api, operator, "?label=team:nlp&status=PENDING&backend=local")) == [ours.id]
    assert ids(list_jobs(api, operator, "?status=FAILED")) == []


def test_another_accounts_cursor_shows_only_the_callers_jobs(api, operator, outsider):
    jobs_at(outsider.account, 3)
    ours = jobs_at(operator.account, 3)
    their_next = list_jobs(api, outsider, "?page_size=1").json()["next"]
    assert set(ids(follow(api, operator, their_next))) <= {job.id for job in ours}

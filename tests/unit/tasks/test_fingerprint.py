"""Failure fingerprints: same task, same exception class, same application frame."""

from __future__ import annotations

from tasks.record.fingerprint import application_frame, exception_class, fingerprint

TIMEOUT_IN_REQUESTS = """Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/celery/app/trace.py", line 453, in trace_task
    R = retval = fun(*args, **kwargs)
  File "/srv/app/tasks/task.py", line 120, in __call__
    return super().__call__(*args, **kwargs)
  File "/srv/app/billing/jobs.py", line 42, in charge
    response = requests.post(url, timeout=5)
  File "/venv/lib/python3.11/site-packages/requests/api.py", line 115, in post
    return request("post", url, data=data, json=json, **kwargs)
requests.exceptions.Timeout: HTTPSConnectionPool(host='pay.example'): Read timed out.
"""


def test_the_innermost_application_frame_is_chosen_over_library_frames() -> None:
    assert application_frame(TIMEOUT_IN_REQUESTS) == "billing/jobs.py:charge"


def test_the_exception_class_comes_from_the_error_line_without_its_module() -> None:
    assert exception_class("Timeout: read timed out", "") == "Timeout"
    assert exception_class("", TIMEOUT_IN_REQUESTS) == "Timeout"
    assert exception_class("", "") == "Error"


def test_the_same_failure_with_another_message_and_line_number_has_the_same_fingerprint() -> None:
    moved = TIMEOUT_IN_REQUESTS.replace("line 42", "line 57").replace("pay.example", "other")
    first = fingerprint("billing.charge", "Timeout: pay.example", TIMEOUT_IN_REQUESTS)
    second = fingerprint("billing.charge", "Timeout: other", moved)
    assert first == second
    assert len(first.key) == 16


def test_another_task_exception_or_function_makes_another_group() -> None:
    base = fingerprint("billing.charge", "Timeout: x", TIMEOUT_IN_REQUESTS)
    assert fingerprint("billing.refund", "Timeout: x", TIMEOUT_IN_REQUESTS).key != base.key
    assert fingerprint("billing.charge", "ValueError: x", TIMEOUT_IN_REQUESTS).key != base.key
    other_function = TIMEOUT_IN_REQUESTS.replace("in charge", "in refund")
    assert fingerprint("billing.charge", "Timeout: x", other_function).key != base.key


def test_a_traceback_of_library_frames_only_groups_by_the_innermost_frame() -> None:
    only_library = (
        'Traceback (most recent call last):\n  File "/usr/lib/python3.11/json/decoder.py",'
        " line 355, in raw_decode\nValueError: bad\n"
    )
    assert application_frame(only_library) == "json/decoder.py:raw_decode"


def test_the_same_code_in_another_checkout_or_release_directory_has_the_same_group() -> None:
    elsewhere = TIMEOUT_IN_REQUESTS.replace("/srv/app/", "/opt/releases/2026-12-06/")
    assert fingerprint("billing.charge", "Timeout: x", elsewhere) == fingerprint(
        "billing.charge", "Timeout: x", TIMEOUT_IN_REQUESTS
    )

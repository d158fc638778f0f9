"""Dashboard test users: a superuser, a read-only operator, staff without the view permission."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from dashboard.access import ensure_read_only_group

PASSWORD = "s3cret-pass"


@pytest.fixture
def admin_client_logged_in(db: Any) -> Client:
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def read_only_client(db: Any) -> Client:
    user = get_user_model().objects.create_user("viewer", password=PASSWORD, is_staff=True)
    user.groups.add(ensure_read_only_group())
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff_without_view_client(db: Any) -> Client:
    user = get_user_model().objects.create_user("intern", password=PASSWORD, is_staff=True)
    client = Client()
    client.force_login(user)
    return client

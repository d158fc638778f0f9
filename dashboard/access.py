"""Who may see the dashboard and who may act from it.

Seeing: a staff user with the job model's view permission (`tasklayer.view_job`); others
are sent to the admin's login page, or get 403 once logged in. Acting: each action's
own permission (tasks.operations.BulkAction.permission), checked again on every POST, so
a forged request without it gets 403 whatever the page showed. The read-only group is
made on migrate (`ensure_read_only_group`): add an operator to it to let them look.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import reverse

from tasks.operations import BulkAction

VIEW_PERMISSION = "tasklayer.view_job"
READ_ONLY_GROUP = "Task dashboard (read-only)"

View = Callable[..., HttpResponseBase]
#: `request.user`: django-stubs types it as AbstractBaseUser, which has no has_perm; the
#: auth backends' users (PermissionsMixin, AnonymousUser) have it.
User = Any


def can_view(user: User) -> bool:
    return bool(
        user.is_active and getattr(user, "is_staff", False) and user.has_perm(VIEW_PERMISSION)
    )


def dashboard_view(view: View) -> View:
    """Staff login and the view permission, for every dashboard page and fragment."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        user = request.user
        if not user.is_authenticated or not getattr(user, "is_staff", False):
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not can_view(user):
            raise PermissionDenied("You may not view the task dashboard.")
        return view(request, *args, **kwargs)

    return guarded


def allowed_actions(user: User) -> set[BulkAction]:
    """The actions whose buttons this user sees."""
    return {action for action in BulkAction if user.has_perm(action.permission)}


def require_action(user: User, action: BulkAction) -> None:
    if not user.has_perm(action.permission):
        raise PermissionDenied(f"You may not {action.label.lower()}.")


def ensure_read_only_group() -> Group:
    """The group whose members see every page and no action button."""
    group, _ = Group.objects.get_or_create(name=READ_ONLY_GROUP)
    app_label, codename = VIEW_PERMISSION.split(".")
    permission = Permission.objects.filter(
        content_type__app_label=app_label, codename=codename
    ).first()
    if permission is not None:
        group.permissions.add(permission)
    return group

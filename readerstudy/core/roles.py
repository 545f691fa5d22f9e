"""Who may do what: the three roles (admins, researchers, readers) as Django groups."""

from collections.abc import Callable
from enum import StrEnum
from functools import wraps

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from rest_framework.permissions import BasePermission


class Role(StrEnum):
    ADMIN = "admins"
    RESEARCHER = "researchers"
    READER = "readers"
    NONE = "none"


# Where each role lands after logging in (URL names).
ROLE_HOME = {
    Role.ADMIN: "admin:index",
    Role.RESEARCHER: "results-home",
    Role.READER: "reading-home",
    Role.NONE: "no-role",
}


def user_role(user: AbstractBaseUser | AnonymousUser) -> Role:
    """The one role a user acts in; staff are admins whatever their groups say."""
    if not user.is_authenticated:
        return Role.NONE
    if user.is_staff or user.is_superuser:
        return Role.ADMIN
    group_names = {group.name for group in user.groups.all()}
    for role in (Role.ADMIN, Role.RESEARCHER, Role.READER):
        if role.value in group_names:
            return role
    return Role.NONE


def user_has_role(user: AbstractBaseUser | AnonymousUser, *roles: Role) -> bool:
    """Whether the user acts in one of these roles; admins may open every page, so they need
    not be listed."""
    return user_role(user) in {Role.ADMIN, *roles}


@transaction.atomic  # all or nothing: a refused change (a reader of an open study) keeps the old role
def user_set_role(*, user: AbstractBaseUser, role: Role) -> None:
    """Put a user in exactly one role's group. Admins run the platform from Django's admin, so
    they are staff with every permission (superusers); nobody else is."""
    user.groups.remove(*Group.objects.filter(name__in=[r.value for r in Role]))
    if role is not Role.NONE:
        group, _ = Group.objects.get_or_create(name=role.value)
        user.groups.add(group)
    user.is_staff = user.is_superuser = role is Role.ADMIN
    user.save(update_fields=["is_staff", "is_superuser"])


def role_required(*roles: Role) -> Callable:
    """View decorator: anonymous users go to login, users of another role get 403.

    Admins may open every page, so they need not be listed.
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user_has_role(request.user, *roles):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


class HasRole(BasePermission):
    """DRF permission twin of ``role_required``: subclass and set ``roles``."""

    roles: tuple[Role, ...] = ()

    def has_permission(self, request, view) -> bool:
        return request.user.is_authenticated and user_has_role(request.user, *self.roles)


class IsAdmin(HasRole):
    """Admins only: the API's one admin permission."""

    roles = ()


class AdminWritesResearcherReads(HasRole):
    """Admins create and change; researchers may only look."""

    roles = (Role.RESEARCHER,)

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        return request.method in ("GET", "HEAD", "OPTIONS") or user_role(request.user) is Role.ADMIN


def role_context(request: HttpRequest) -> dict:
    """Template context: the current user's role, for the navigation bar."""
    return {"user_role": user_role(request.user).value}


def redirect_home(user: AbstractBaseUser) -> HttpResponse:
    return redirect(ROLE_HOME[user_role(user)])

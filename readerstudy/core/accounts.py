"""Account services: create users in a role (used by the demo, commands and tests), the API
tokens that let scripts fetch exports without a browser session, and the limit on password-reset
requests."""

import hashlib
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

from .roles import Role, user_set_role


def account_ensure(*, username: str, password: str, role: Role, email: str = "") -> AbstractBaseUser:
    """Create the user if missing (or reset its password), and put it in ``role``."""
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=username, defaults={"email": email})
    user.set_password(password)
    user.save()
    user_set_role(user=user, role=role)
    return user


def api_token_create(*, user: AbstractBaseUser) -> str:
    """A new API token for the user, replacing any earlier one (which stops working at once)."""
    from rest_framework.authtoken.models import Token

    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user).key


def api_token_created_at(*, user: AbstractBaseUser):
    """When the user's API token was made, or None if they have none."""
    from rest_framework.authtoken.models import Token

    return Token.objects.filter(user=user).values_list("created", flat=True).first()


def api_token_revoke(*, user: AbstractBaseUser) -> bool:
    """Delete the user's API token; False if there was none."""
    from rest_framework.authtoken.models import Token

    deleted, _ = Token.objects.filter(user=user).delete()
    return bool(deleted)


PASSWORD_RESETS_PER_HOUR = 5  # per address and per account: a reader who lost a link asks again, a script cannot


def password_reset_allowed(*, address: str | None, email: str, now: datetime | None = None) -> bool:
    """Whether this reset request may send a link: at most ``PASSWORD_RESETS_PER_HOUR`` an hour
    from one address and for one e-mail address; the request is counted when allowed."""
    from django.utils import timezone

    from .models import PasswordResetRequest

    now = now or timezone.now()
    PasswordResetRequest.objects.filter(at__lt=now - timedelta(days=1)).delete()
    email_key = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    recent = PasswordResetRequest.objects.filter(at__gte=now - timedelta(hours=1))
    if recent.filter(email_key=email_key).count() >= PASSWORD_RESETS_PER_HOUR or (
        address and recent.filter(address=address).count() >= PASSWORD_RESETS_PER_HOUR
    ):
        return False
    PasswordResetRequest.objects.create(address=address or None, email_key=email_key, at=now)
    return True

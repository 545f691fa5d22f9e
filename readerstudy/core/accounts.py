"""Account services: create users in a role (used by the demo, commands and tests), and the API
tokens that let scripts fetch exports without a browser session."""

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


def api_token_revoke(*, user: AbstractBaseUser) -> bool:
    """Delete the user's API token; False if there was none."""
    from rest_framework.authtoken.models import Token

    deleted, _ = Token.objects.filter(user=user).delete()
    return bool(deleted)

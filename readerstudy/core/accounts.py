"""Account services: create users in a role (used by the demo, commands and tests)."""

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

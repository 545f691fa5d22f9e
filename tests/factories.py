"""Factories for the tests, in one place."""

import factory
from django.contrib.auth import get_user_model

from readerstudy.models import ProbeJob
from readerstudy.roles import Role, user_set_role

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def role(user, create, extracted, **kwargs):
        user.save()
        if extracted:
            user_set_role(user=user, role=Role(extracted))


class ProbeJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProbeJob

    steps = 5
    step_seconds = 0.0

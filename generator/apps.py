"""The generator app: from uploaded volumes to a bank of real and synthetic images."""

from django.apps import AppConfig


class GeneratorConfig(AppConfig):
    name = "generator"
    verbose_name = "Generator and image bank"

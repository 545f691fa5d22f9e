"""A reader of an open study stays a reader: a later change of the user's groups or staff flag
that would make them an admin or a researcher (who see results and answers) is refused."""

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, pre_save
from django.dispatch import receiver

from readerstudy.core.roles import Role

from .readers import ReaderError, open_readings

ELEVATED_GROUPS = {Role.ADMIN.value, Role.RESEARCHER.value}


def _refuse_if_reading(user, becoming: str) -> None:
    readings = open_readings(user)
    if readings:
        studies = ", ".join(str(reading.study) for reading in readings)
        raise ReaderError(
            f"{user.get_username()} reads the open study {studies}: they cannot become one of the {becoming} "
            "while it is open (close it first, or give them another account)."
        )


@receiver(m2m_changed, sender=get_user_model().groups.through)
def refuse_elevating_a_reader(sender, instance, action, pk_set, model, reverse, **kwargs) -> None:
    if action != "pre_add" or not pk_set:
        return
    if not reverse:  # user.groups.add(group, …)
        added = set(model.objects.filter(pk__in=pk_set, name__in=ELEVATED_GROUPS).values_list("name", flat=True))
        if added:
            _refuse_if_reading(instance, " / ".join(sorted(added)))
    elif instance.name in ELEVATED_GROUPS:  # group.user_set.add(user, …)
        for user in model.objects.filter(pk__in=pk_set):
            _refuse_if_reading(user, instance.name)


@receiver(pre_save, sender=get_user_model())
def refuse_making_a_reader_staff(sender, instance, update_fields=None, **kwargs) -> None:
    if instance.pk is None or not (instance.is_staff or instance.is_superuser):
        return
    if update_fields is not None and not {"is_staff", "is_superuser"} & set(update_fields):
        return  # an admin's every login saves last_login alone: no query for that
    stored = sender.objects.filter(pk=instance.pk).values("is_staff", "is_superuser").first()
    if stored and not (stored["is_staff"] or stored["is_superuser"]):
        _refuse_if_reading(instance, Role.ADMIN.value)

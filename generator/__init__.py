"""Volumes, training jobs, checkpoints and the image bank (Django app); ``ml/`` holds the
Django-free numerical code: volume loading and alignment, slicing, the DCGAN, rendering."""

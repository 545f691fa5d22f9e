"""Models of the generator app (volumes, training jobs, bank images) arrive with their issues."""

"""The known head pose the alignment tests recover (fast and system tier), in the template's frame."""

import numpy as np

from generator.ml.alignment import BASAL_GANGLIA_CENTRE_MNI_MM, rotation_matrix_deg

CENTRE = np.array([*BASAL_GANGLIA_CENTRE_MNI_MM, 1.0])


def rigid(rotation_deg, translation_mm) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = rotation_matrix_deg(*rotation_deg)
    matrix[:3, 3] = translation_mm
    return matrix


# The head as scanned: template point p lies at TRUE @ p in the scanner's world.
TRUE = rigid((6.0, -4.0, 3.0), (8.0, -5.0, 10.0))

"""The DCGAN training loop, in named pieces; the Celery task, train_dcgan and the tests all call ``train``.

    loop.py         train(): build the GAN, restore its checkpoint, run steps until the budget is spent
    gan.py          GAN(keras.Model): train_step is the paper's update; the step compiled for a strategy
    budget.py       the budget (steps, epochs or minutes) and what is left of it
    callbacks.py    between steps: stop checks, checkpoints, sample grids, losses, metrics, progress
    run_folder.py   the run folder's files beside the checkpoints (config, fixed z, history, metrics, plots)
    generators.py   a trained generator: export, load, generate by seed

Importing the package stays cheap: TensorFlow is imported inside ``train`` and the generator functions.
"""

from generator.ml.training.generators import export_generator, generate, generate_from_seeds, load_generator
from generator.ml.training.loop import TrainingProgress, TrainingResult, train

__all__ = [
    "TrainingProgress",
    "TrainingResult",
    "export_generator",
    "generate",
    "generate_from_seeds",
    "load_generator",
    "train",
]

"""Plain Python and TensorFlow, never Django: usable and testable on its own.

TensorFlow is imported inside the functions that need it, so importing this package is cheap.
"""

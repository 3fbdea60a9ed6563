"""tumorcot: traceable findings -> impression -> pathology chain-of-thought VQA data from CT."""

__version__ = "0.1.0"

"""The engine: the nine stages, training, serving and monitoring, headless.

Nothing here imports Textual or anything in `app`.
"""

__version__ = "0.1.0"

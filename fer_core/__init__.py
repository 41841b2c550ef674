"""FER Lab engine: data readers, models, training, evaluation and inference for facial expression research."""
__version__ = "0.1.0"

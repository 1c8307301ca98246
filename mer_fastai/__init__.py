"""mer-fastai: music emotion recognition with fastai transfer learning."""

__version__ = "0.1.0"

"""Built-in experiment recipes (YAML), shipped as package data `mer_fastai.recipes`."""

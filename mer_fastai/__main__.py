"""`python -m mer_fastai` runs the CLI (used by `accelerate launch -m mer_fastai`)."""

from .cli.main import main

main()

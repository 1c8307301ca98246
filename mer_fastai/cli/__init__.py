"""Typer command-line interface: one small module per subcommand; each parses and delegates."""

import os
import sys
import warnings

if "--debug" not in sys.argv and os.environ.get("MER_FASTAI_DEBUG") != "1":
    # library deprecation chatter (torch.jit, timm) is noise for CLI users; --debug shows it
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)

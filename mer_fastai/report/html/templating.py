"""The page as HTML text: the package's Jinja2 templates rendered, and images inlined as `data:` URIs."""

from __future__ import annotations

import base64
import time
from pathlib import Path

from ..._version import __version__


def render(template: str, title: str, source: str, **values: object) -> str:
    """HTML text of one of the package's templates."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("mer_fastai.report.html", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template(template).render(
        title=title,
        source=source,
        generated=time.strftime("%Y-%m-%d %H:%M"),
        generator_version=__version__,
        **values,
    )


def data_uri(path: Path) -> str | None:
    """The file as a `data:` URI (PNG or JPEG), or None when it is missing."""
    if not path.is_file():
        return None
    kind = "jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "png"
    return f"data:image/{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii")

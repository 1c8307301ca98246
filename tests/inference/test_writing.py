"""`inference.writing`: the output format chosen from `--out` and `--format`."""

from __future__ import annotations

import pytest

from mer_fastai.errors import MerError
from mer_fastai.inference.writing import output_format


def test_output_format_follows_the_out_extension(tmp_path):
    assert output_format(None, None) == "json" and output_format(None, "csv") == "csv"
    assert output_format(tmp_path / "p.CSV", None) == "csv" and output_format(tmp_path / "p.json", "json") == "json"
    assert output_format(tmp_path / "p.txt", "csv") == "csv"  # an explicit --format may name any other extension
    refused = {
        (tmp_path, None): "is a folder; name a file",
        (tmp_path / "x.csv", "json"): "--format json: the extension says csv",
        (tmp_path / "x.xml", None): "--out .*x.xml: unknown extension; use .json or .csv, or pass --format",
        (tmp_path / "x", None): "unknown extension",
        (tmp_path / "x.json", "xml"): "unknown --format 'xml'",
    }
    for (out, fmt), message in refused.items():
        with pytest.raises(MerError, match=message):
            output_format(out, fmt)
    assert list(tmp_path.iterdir()) == []

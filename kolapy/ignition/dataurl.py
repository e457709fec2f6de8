"""``data:`` URLs for Ignition file contents (used by the builder and the Butane translator)."""

from __future__ import annotations

import base64
import urllib.parse


def data_url(contents: str | bytes) -> str:
    """Encode file contents as a ``data:`` URL Ignition accepts.

    Text is percent-encoded (readable in the JSON); bytes are base64.
    """
    if isinstance(contents, str):
        return "data:," + urllib.parse.quote(contents, safe="")
    return "data:;base64," + base64.b64encode(contents).decode("ascii")

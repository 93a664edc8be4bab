"""The docstrings' Sphinx roles as Markdown code for the API pages (a griffe extension, mkdocs.yml).

The docstrings are numpydoc, written for readers of the source and of ``help()``; they name other
objects with Sphinx roles (``:class:`~qcmb_parsl.ParslExecutor```). Markdown has no roles, so each
becomes a code span of the name as the role would show it (``ParslExecutor``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`(~?)\.?([^`]+)`")


def _shown(match: re.Match[str]) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class SphinxRoles(griffe.Extension):
    """Rewrites Sphinx roles in every docstring once it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_shown, obj.docstring.value)

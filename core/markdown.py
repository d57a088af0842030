"""Markdown escaping: names people choose (files, projects, columns) render as text, never as links or images."""

from __future__ import annotations

import re

# CommonMark lets any ASCII punctuation be backslash-escaped; these are the ones Markdown, Streamlit's
# directives (:red[...], :material/...:) and its LaTeX ($...$) give a meaning to.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])")


def escape_markdown(text: object) -> str:
    """The text shown literally inside Markdown (st.caption, st.markdown, st.error, ...); line breaks become spaces."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(text).splitlines()))

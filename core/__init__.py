"""Rerank Studio's engine: everything the pages and the CLI do, with no Streamlit import."""

__version__ = "0.1.0"

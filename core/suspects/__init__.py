"""Suspect labels: the person's own labels checked by models that never trained on them (issue 25)."""

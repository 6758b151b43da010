"""Signals the registry sends for the layers above it (which the registry never imports)."""

from django.dispatch import Signal

# A tag was pushed (created or moved), sent once the push has committed.
# Arguments: account_id, repository ("<account>/<path>"), tag, digest.
tag_pushed = Signal()

"""Workflows over a model: what users run (the label cache here; timelines and live streams in
:mod:`actionclip.temporal`, the same layer), above the model and its loader, below the services."""

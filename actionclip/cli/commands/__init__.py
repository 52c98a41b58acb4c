"""Sub-commands of the ``actionclip`` CLI, one module each (see ``actionclip.cli``)."""

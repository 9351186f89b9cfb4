"""The static engine: reads source with CPython's ast, never imports the checked code or torch."""

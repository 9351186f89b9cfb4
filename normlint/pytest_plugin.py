"""pytest plugin: a placeholder until the runtime audit lands (kept import-light: no torch)."""

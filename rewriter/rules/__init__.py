"""The rule language (loader, families, typed conditions, catalog) and the engine that applies it."""

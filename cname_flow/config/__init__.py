"""Settings: the YAML config with locations, its sections, credentials."""

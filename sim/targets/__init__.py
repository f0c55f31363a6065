"""Hardware descriptions as data: one TOML file per target."""

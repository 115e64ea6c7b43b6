"""The built-in Nexus themes, one TOML file each (this folder ships as the package nexus_tui.builtin_themes;
see nexus_tui/themes.py for the format and the loader)."""

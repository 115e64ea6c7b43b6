"""Only what pyproject.toml cannot say: the top-level themes/ folder (the built-in theme files) ships
inside the package as `nexus_tui.builtin_themes`, beside the packages found as usual."""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["engine*", "nexus_tui*", "nexus_core*", "nexus", "nexus.*"]),
        "nexus_tui.builtin_themes",
    ],
    package_dir={"nexus_tui.builtin_themes": "themes"},
)

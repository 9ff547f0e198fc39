"""meshgate's gateway node: everything one process serves."""

# The one place the version is written: the package metadata (pyproject.toml), `meshgate
# --version`, /health, /info and the image label (Dockerfile build arg) all read it.
__version__ = "0.1.0"

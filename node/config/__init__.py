"""`meshgate serve` settings, declared once per part and read from flags, environment and TOML.

- node/config/declare.py: how a setting is declared (`setting()`), and `Option`, its reading.
- node/config/sections.py: every setting, in one section per part.
- node/config/model.py: `Config`, all sections at once; `OPTIONS`, `RUNTIME_SETTINGS`.
- node/config/sources.py: flags, environment and file merged into a checked `Config`.
- node/config/security.py: checks across settings (auth off loopback, secrets).
"""

from node.config.declare import ConfigError, Option
from node.config.model import OPTIONS, RUNTIME_SETTINGS, SECTIONS, Config
from node.config.security import is_loopback
from node.config.sources import add_arguments, convert_option, load, read_config_file

__all__ = [
    "OPTIONS",
    "RUNTIME_SETTINGS",
    "SECTIONS",
    "Config",
    "ConfigError",
    "Option",
    "add_arguments",
    "convert_option",
    "is_loopback",
    "load",
    "read_config_file",
]

"""The k3OS configuration: typed model, loading and merging in k3OS order, cmdline parser, dump,
validation, and applying a phase to a root directory.

Cheap to import (PyYAML only): the node's boot path imports it. See ``docs/config.md``.
"""

from __future__ import annotations

from image_base.config.apply import apply
from image_base.config.cmdline import parse_cmdline
from image_base.config.dump import dump_yaml, secret_values, to_dict
from image_base.config.errors import ApplyError, ConfigError
from image_base.config.load import load_config_file, load_merged, merge, parse_config_text
from image_base.config.model import Command, Install, K3osConfig, K3osSection, Wifi, WriteFile
from image_base.config.parse import parse
from image_base.config.phases import PHASES, Phase
from image_base.config.runner import RecordingRunner, Runner, SubprocessRunner

__all__ = [
    "PHASES",
    "ApplyError",
    "Command",
    "ConfigError",
    "Install",
    "K3osConfig",
    "K3osSection",
    "Phase",
    "RecordingRunner",
    "Runner",
    "SubprocessRunner",
    "Wifi",
    "WriteFile",
    "apply",
    "dump_yaml",
    "load_config_file",
    "load_merged",
    "merge",
    "parse",
    "parse_cmdline",
    "parse_config_text",
    "secret_values",
    "to_dict",
]

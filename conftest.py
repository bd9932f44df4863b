"""Registers the acceptance suite's pytest plugin (fixtures/plugin.py) when the package is not installed.

Installed (``pip install -e .``), the package's ``pytest11`` entry point has registered it already.
"""
from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    from fixtures import plugin

    if pluginmanager.get_plugin(plugin.PLUGIN_NAME) is None:
        pluginmanager.register(plugin, plugin.PLUGIN_NAME)

"""Plugins that ship with callgate, registered like third-party ones."""

pytest_plugins = ["callgate.testing"]

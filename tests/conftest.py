pytest_plugins = ["opsbook_lab.pytest_plugin"]

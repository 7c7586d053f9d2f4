pytest_plugins = ["opsbook_lab.pytest_plugin", "opsbook_lab.k8s_pytest"]

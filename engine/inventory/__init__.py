"""Ansible inventories read exactly as Ansible reads them.

    from opsbook.inventory import load_inventory
    inv = load_inventory(["inventories/prod.ini", "inventories/extra/"])
    inv.match("web:&prod:!web3")      # Ansible host patterns, Ansible's order
    inv.host("web1").vars             # effective variables, Ansible's precedence
    inv.var_sources("web1")           # where each value came from
    inv.to_ansible_list()             # what `ansible-inventory --list` prints

INI and YAML files, directories of them, `host1,host2` lists, `group_vars/` and
`host_vars/` beside each source. Parity with ansible-core is pinned by tests that run the
real `ansible-inventory` on the same inventories. Where Ansible would only warn and go on
with part of an inventory, opsbook raises InventoryError naming file:line:column.
"""

from opsbook.inventory._sources import load_inventory
from opsbook.inventory.model import Group, Host, Inventory

__all__ = ["Group", "Host", "Inventory", "load_inventory"]

"""Ansible inventories read exactly as Ansible reads them.

    from opsbook.inventory import load_inventory
    inv = load_inventory(["inventories/prod.ini", "inventories/extra/"])
    inv.match("web:&prod:!web3")      # Ansible host patterns, Ansible's order
    inv.host("web1").vars             # effective variables, Ansible's precedence
    inv.var_sources("web1")           # where each value came from, lowest first
    ansible_list(inv)                 # what `ansible-inventory --list` prints

INI and YAML (and JSON) files, directories of them, `host1,host2` lists, and the
`group_vars/` and `host_vars/` beside each source. Parity with ansible-core is pinned by
tests that run the real `ansible-inventory` and `ansible --list-hosts` on the same
inventories (tests/unit/inventory/data/parity.yaml).

Where opsbook deliberately differs, it is stricter, never different:

- What Ansible skips with a warning is an InventoryError with file:line:column: a source
  that cannot be parsed or is missing, an unknown key in a YAML group (`host:`), a group
  that is not a mapping, a duplicate YAML key, a host range that expands to nothing
  (`[3:1]`, step 0). Dynamic inventory scripts, inventory plugin configurations, TOML
  and vault-encrypted files are refused with a hint instead of being run or decrypted.
- A pattern term that matches no host or group raises PatternError (Ansible warns and
  ignores it, so a typo in `!primary` would select the primary); so does a subscript
  that selects nothing. A pattern whose terms all exist may still select no host.
- Hosts two or more group levels below a group with several parents come in declaration
  order; Ansible orders them by Python set iteration, which changes from run to run.
- A YAML file holding `{}` is an empty inventory (Ansible reads it as INI with a host
  named "{}").
"""

from opsbook.inventory._render import ansible_graph, ansible_list
from opsbook.inventory._sources import load_inventory
from opsbook.inventory.model import Group, Host, Inventory

__all__ = ["Group", "Host", "Inventory", "ansible_graph", "ansible_list", "load_inventory"]

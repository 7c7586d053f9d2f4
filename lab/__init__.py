"""opsbook's lab: real sshd containers with nginx, HAProxy and Redis on the lab's own dockerd.

    from opsbook_lab import Lab
    info = Lab().up()

See opsbook_lab.lab, the `opsbook-lab` command and inventories/lab.README.md.
"""

from .daemon import LabError
from .lab import HostInfo, Lab, LabInfo

__all__ = ["HostInfo", "Lab", "LabError", "LabInfo"]

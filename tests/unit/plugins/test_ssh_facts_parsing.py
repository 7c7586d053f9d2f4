"""ssh.setup's parsing of the facts script's output (the script itself runs in the lab
tests and, over the local connection, in tests/unit/execute/test_flow_and_facts.py)."""

from __future__ import annotations

import subprocess

from opsbook_plugins.ssh.facts import FACTS_SCRIPT, matches, parse_facts, split_sections

UBUNTU = """
@@hostname
db1.example.net
@@fqdn
db1.example.net
@@os_release
NAME="Ubuntu"
ID=ubuntu
ID_LIKE=debian
VERSION_ID="22.04"
VERSION_CODENAME=jammy
@@debian_version
bookworm/sid
@@meminfo
MemTotal:        4045900 kB
MemFree:          512000 kB
SwapTotal:             0 kB
@@vcpus
4
@@uptime
3600.52 7000.1
@@comm
sh
@@init
/etc/init.d
@@uname
Linux 6.1.0 x86_64
@@route
8.8.8.8 via 10.0.0.1 dev eth0 src 10.0.0.5 uid 0
@@addr
1: lo    inet 127.0.0.1/8 scope host lo
2: eth0    inet 10.0.0.5/24 brd 10.0.0.255 scope global eth0
@@links
eth0 02:42:0a:00:00:05 1500 1
lo 00:00:00:00:00:00 65536 772
@@mounts
/dev/sda1\t/\text4\trw,relatime\t4096 1000 250 600 400 300
/dev/sdb1\t/var/lib/my data\txfs\trw\t4096 2000 2000 10 10
@@date
1796670000 +0100 CET
""".replace("\\t", "\t")


def test_the_facts_ansible_users_reach_for_with_ansibles_names_and_shapes():
    facts = parse_facts(split_sections(UBUNTU))
    assert (facts["hostname"], facts["fqdn"], facts["domain"]) == ("db1", "db1.example.net", "example.net")
    assert (facts["distribution"], facts["distribution_version"], facts["distribution_major_version"],
            facts["distribution_release"], facts["os_family"]) == ("Ubuntu", "22.04", "22", "jammy", "Debian")
    assert (facts["memtotal_mb"], facts["memfree_mb"], facts["processor_vcpus"]) == (3951, 500, 4)
    assert facts["uptime_seconds"] == 3600
    assert facts["service_mgr"] == "sysvinit"  # PID 1 is a shell: what is installed decides
    assert facts["default_ipv4"] == {"address": "10.0.0.5", "interface": "eth0", "alias": "eth0", "gateway": "10.0.0.1",
                                     "netmask": "255.255.255.0", "network": "10.0.0.0", "prefix": "24",
                                     "broadcast": "10.0.0.255", "macaddress": "02:42:0a:00:00:05", "mtu": 1500,
                                     "type": "ether"}
    assert facts["all_ipv4_addresses"] == ["10.0.0.5"]
    root, data = facts["mounts"]
    assert (root["mount"], root["size_total"], root["size_available"], root["block_used"]) == ("/", 4096000, 1024000, 750)
    assert data["mount"] == "/var/lib/my data" and data["inode_used"] == 0
    # Ansible's block_used counts the 50 blocks reserved for root; block_free is what df reads
    assert (root["block_free"], root["size_free"]) == (300, 1228800) and "block_free" not in data
    dt = facts["date_time"]
    assert (dt["date"], dt["hour"], dt["tz"], dt["tz_offset"], dt["iso8601"]) == (
        "2026-12-07", "20", "CET", "+0100", "2026-12-07T19:00:00Z")


def test_what_a_host_does_not_say_is_absent_not_guessed():
    facts = parse_facts(split_sections("@@hostname\nbox\n@@route\n@@mounts\n@@date\n"))
    assert facts["default_ipv4"] == {} and facts["mounts"] == [] and facts["date_time"] == {}
    assert facts["distribution"] == "NA" and facts["processor_vcpus"] is None


def test_filter_matches_the_prefixed_or_the_bare_name_as_ansible():
    assert matches("mounts", ["ansible_mounts"]) and matches("mounts", ["mounts"])
    assert matches("distribution_version", ["ansible_distribution*"])
    assert not matches("hostname", ["ansible_mounts", "ansible_distribution*"])


def test_the_script_is_posix_sh_and_names_every_section():
    done = subprocess.run(["sh", "-n", "-c", FACTS_SCRIPT], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    sections = split_sections(subprocess.run(["sh", "-c", FACTS_SCRIPT], capture_output=True, text=True,
                                             check=False).stdout)
    assert {"hostname", "os_release", "meminfo", "mounts", "date"} <= set(sections)

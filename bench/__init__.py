"""opsbook's benchmark harness: opsbook against ansible-core, pyinfra and a paramiko floor.

Run it all with `python -m bench` (or `bench/run`); `--quick` for a short run. Results go to
bench/results/latest.json and latest.md. See bench/README.md.
"""

"""``--netem``: the consumers behind a simulated network, PostgreSQL and Redis on the host.

The consumers (every system's) run in their own network namespace, joined to
the host by a veth pair; ``tc netem`` on each end delays every packet (0.5 ms
each way by default, so 1 ms per round trip). PostgreSQL and Redis listen on
127.0.0.1 only, and PostgreSQL admits only 127.0.0.1 (``pg_hba.conf``), so an
``nft`` table of this run rewrites, in the kernel, what arrives on the host's
end for their ports: destination the host's veth address -> 127.0.0.1
(``route_localnet`` on that interface lets it through), source -> 127.0.0.1.
No process relays the bytes, so nothing adds CPU; the servers see the
consumers as local clients. The driver stays in the host namespace and talks
to 127.0.0.1 directly: inserts and enqueues cross no delayed link.

Needs root, iproute2 (``ip``, ``tc``), ``nft`` and a kernel with
``sch_netem``; ``Link.unavailable()`` says what is missing. Everything is
removed on exit, on error, on Ctrl-C and at interpreter exit; a run killed
with SIGKILL leaves names carrying its pid, which the next run removes
(``_remove_stale``).
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess

PREFIX = "bbench"


def _run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=check)


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def _remove_stale() -> None:
    """Namespaces and nft tables left by benchmark runs that no longer exist."""
    for name in _run("ip", "netns", "list", check=False).stdout.split():
        found = re.fullmatch(PREFIX + r"(\d+)", name)
        if found and not _alive(int(found.group(1))):
            _run("ip", "netns", "delete", name, check=False)
    for name in re.findall(r"table ip (\S+)", _run("nft", "list", "tables", check=False).stdout):
        found = re.fullmatch(PREFIX + r"(\d+)", name)
        if found and not _alive(int(found.group(1))):
            _run("nft", "delete", "table", "ip", name, check=False)


class Link:
    """The namespace, its veth pair and delays, and the address rewriting."""

    def __init__(self, delay_ms: float, ports: tuple[int, ...]) -> None:
        pid = os.getpid()
        self.delay_ms = delay_ms
        self.ports = ports
        self.name = f"{PREFIX}{pid}"  # namespace and nft table
        self.host_if, self.ns_if = f"bb{pid}h", f"bb{pid}n"  # at most 15 characters
        block = (pid % 16_000) * 4  # a /30 of 10.213.0.0/16 for this run
        self.host_ip = f"10.213.{block // 256}.{block % 256 + 1}"
        self.ns_ip = f"10.213.{block // 256}.{block % 256 + 2}"
        self.up = False

    @staticmethod
    def unavailable() -> str | None:
        """Why ``--netem`` cannot run here, or None."""
        if os.geteuid() != 0:
            return "needs root (a network namespace, a veth pair, tc and nft)"
        missing = [tool for tool in ("ip", "tc", "nft", "ss") if shutil.which(tool) is None]
        if missing:
            return f"needs {', '.join(missing)} (iproute2; nft from the nftables package)"
        return None

    def wrap(self, command: list[str]) -> list[str]:
        """``command`` run inside the namespace (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.name, *command]

    def ns_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def rewrite(self, env: dict[str, str]) -> dict[str, str]:
        """The consumers' URLs with the host's veth address for 127.0.0.1 / localhost."""
        host = re.compile(r"^([a-z][a-z0-9+.-]*://(?:[^@/]*@)?)(?:127\.0\.0\.1|localhost)(?=[:/?]|$)")
        return {key: host.sub(rf"\g<1>{self.host_ip}", value) for key, value in env.items()}

    def open(self) -> None:
        """Build it all; on any failure undo what was built and raise ``RuntimeError``."""
        _remove_stale()
        atexit.register(self.close)
        self.up = True
        ns = ["ip", "netns", "exec", self.name]
        ports = ", ".join(map(str, self.ports))
        rules = f"""table ip {self.name} {{
  chain pre {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname "{self.host_if}" ip daddr {self.host_ip} tcp dport {{ {ports} }} dnat to 127.0.0.1
  }}
  chain local_in {{
    type nat hook input priority 100; policy accept;
    iifname "{self.host_if}" ip daddr 127.0.0.1 tcp dport {{ {ports} }} snat to 127.0.0.1
  }}
}}
"""
        steps: list[list[str]] = [
            ["ip", "netns", "add", self.name],
            ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if],
            ["ip", "link", "set", self.ns_if, "netns", self.name],
            ["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if],
            ["ip", "link", "set", self.host_if, "up"],
            [*ns, "ip", "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if],
            [*ns, "ip", "link", "set", self.ns_if, "up"],
            [*ns, "ip", "link", "set", "lo", "up"],
            ["sysctl", "-qw", f"net.ipv4.conf.{self.host_if}.route_localnet=1"],
        ]
        if self.delay_ms > 0:
            delay = f"{self.delay_ms}ms"
            steps += [
                ["tc", "qdisc", "add", "dev", self.host_if, "root", "netem", "delay", delay],
                [*ns, "tc", "qdisc", "add", "dev", self.ns_if, "root", "netem", "delay", delay],
            ]
        try:
            for step in steps:
                done = _run(*step, check=False)
                if done.returncode != 0:
                    reason = done.stderr.strip()
                    if "netem" in step and "unknown" in reason:
                        reason += " (this kernel has no sch_netem: CONFIG_NET_SCH_NETEM)"
                    raise RuntimeError(f"`{' '.join(step)}` failed: {reason}")
            done = subprocess.run(["nft", "-f", "-"], input=rules, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"nft: {done.stderr.strip()}")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Remove the nft table and the namespace (which takes the veth pair with it)."""
        if not self.up:
            return
        self.up = False
        _run("nft", "delete", "table", "ip", self.name, check=False)
        _run("ip", "netns", "delete", self.name, check=False)
        _run("ip", "link", "delete", self.host_if, check=False)  # if the namespace never got it
        atexit.unregister(self.close)

    def describe(self) -> str:
        delay = f"tc netem {self.delay_ms:g} ms each way" if self.delay_ms > 0 else "no added delay"
        return (
            f"consumers in network namespace {self.name} ({self.ns_ip}), veth to the host ({self.host_ip}), "
            f"{delay}; ports {', '.join(map(str, self.ports))} rewritten to 127.0.0.1 by nft (no proxy)"
        )

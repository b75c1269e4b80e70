"""Real test hosts: Linux network namespaces on a bridge, each with its own address and its own sshd.

Ansible reaches them over SSH like any machine. They share this machine's filesystem, so each host's
data lives in its own directory. Traffic goes only to the addresses created here (10.213.N.0/24 on a
bridge that exists only for the test). Needs root and iproute2; `ip netns` is cleaned up afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def available() -> str:
    """'' when network-namespace hosts can be made here, else why not."""
    if os.geteuid() != 0:
        return "needs root (ip netns)"
    for tool in ("ip", "/usr/sbin/sshd", "ssh-keygen", "ssh"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make system installs iproute2 and openssh-server)"
    return ""


_counter = iter(range(1_000_000))


def _next_index() -> int:
    """A /24 and bridge of its own per network: the process id and a counter, in 20..249."""
    return 20 + (os.getpid() * 7 + next(_counter)) % 230


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


@dataclass
class NetnsHost:
    name: str
    namespace: str
    address: str
    directory: Path
    host_key: Path
    outside: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.directory / "sshd.log"

    def public_key(self) -> str:
        return " ".join(self.host_key.with_suffix(".pub").read_text().split()[:2])

    def logins(self) -> int:
        return self.log.read_text(errors="replace").count("Accepted publickey") if self.log.exists() else 0


@dataclass
class NetnsNetwork:
    root: Path
    index: int = field(default_factory=lambda: _next_index())
    hosts: dict[str, NetnsHost] = field(default_factory=dict)

    @property
    def bridge(self) -> str:
        return f"drbr{self.index}"

    @property
    def client_key(self) -> Path:
        return self.root / "client_key"

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.client_key))
        (self.root / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        with contextlib.suppress(subprocess.CalledProcessError):
            _run("ip", "link", "del", self.bridge)
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"10.213.{self.index}.1/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")

    def add_host(self, name: str, *, host_key_of: NetnsHost | None = None) -> NetnsHost:
        number = 10 + len(self.hosts)
        namespace = f"dr{self.index}-{name}"[:15]
        directory = self.root / name
        directory.mkdir()
        address = f"10.213.{self.index}.{number}"
        outside, inside = f"drv{self.index}x{number}", f"drp{self.index}x{number}"
        for stale in (("ip", "netns", "del", namespace), ("ip", "link", "del", outside)):
            with contextlib.suppress(subprocess.CalledProcessError):
                _run(*stale)
        _run("ip", "netns", "add", namespace)
        _run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        _run("ip", "link", "set", inside, "netns", namespace)
        _run("ip", "link", "set", outside, "master", self.bridge, "up")
        _run("ip", "netns", "exec", namespace, "ip", "addr", "add", f"{address}/24", "dev", inside)
        _run("ip", "netns", "exec", namespace, "ip", "link", "set", inside, "up")
        _run("ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up")
        key = directory / "ssh_host_ed25519_key"
        if host_key_of is not None:  # the same machine identity, as a cloned VM would have
            shutil.copy(host_key_of.host_key, key)
            shutil.copy(host_key_of.host_key.with_suffix(".pub"), key.with_suffix(".pub"))
            key.chmod(0o600)
        else:
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        (directory / "sshd_config").write_text(
            f"Port 22\nListenAddress {address}\nHostKey {key}\nPidFile {directory / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "LogLevel VERBOSE\nSubsystem sftp internal-sftp\n")
        host = NetnsHost(name, namespace, address, directory, key, outside=outside)
        self.hosts[name] = host
        self.start_sshd(host)
        return host

    def start_sshd(self, host: NetnsHost) -> None:
        host.process = subprocess.Popen(
            ["ip", "netns", "exec", host.namespace, "/usr/sbin/sshd", "-D", "-f", str(host.directory / "sshd_config"),
             "-E", str(host.log)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = subprocess.run(["ssh-keyscan", "-T", "1", host.address], capture_output=True, text=True,
                                   check=False)
            if probe.stdout.strip():
                return
            time.sleep(0.1)
        raise RuntimeError(f"sshd of {host.name} did not start; see {host.log}")

    def stop_sshd(self, host: NetnsHost) -> None:
        if host.process is not None and host.process.poll() is None:
            os.killpg(host.process.pid, signal.SIGTERM)
            host.process.wait(timeout=10)
        host.process = None

    def ansible_vars(self) -> dict[str, object]:
        return {"ansible_user": "root", "ansible_connection": "ssh",
                "ansible_ssh_private_key_file": str(self.client_key),
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                                           "-o ConnectTimeout=5 -o ControlMaster=no",
                "ansible_python_interpreter": sys.executable}

    def close(self) -> None:
        for host in self.hosts.values():
            with contextlib.suppress(Exception):
                self.stop_sshd(host)
            with contextlib.suppress(subprocess.CalledProcessError):
                _run("ip", "netns", "del", host.namespace)
            with contextlib.suppress(subprocess.CalledProcessError):
                _run("ip", "link", "del", host.outside)
        with contextlib.suppress(subprocess.CalledProcessError):
            _run("ip", "link", "del", self.bridge)

"""A throwaway Debian 12 machine under systemd-nspawn, booted with a real systemd.

Used by the end-to-end deployment test: the root filesystem is built once
with debootstrap and cached (keyed by suite and package list), each run boots
a private copy of it, reaches it over a veth pair addressed by hand with a
/30 (so ssh and Ansible reach this container and nothing else), and removes
every trace on `Machine.destroy()` whatever state the machine is in.

Needs root. `unavailable_reason()` says why it cannot run here, for a skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "openssh-server",
            "iproute2", "prometheus-node-exporter")  # node_exporter: the metrics scrape test
HOST_TOOLS = {"systemd-nspawn": "systemd-container", "debootstrap": "debootstrap"}
CACHE_DIR = Path(os.environ.get("FRACTALD_E2E_CACHE", "/var/cache/fractald-e2e"))
WORK_DIR = Path(os.environ.get("FRACTALD_E2E_WORKDIR", "/var/tmp"))
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
COMPLETE_MARK = ".fractald-e2e-complete"


class MachineError(RuntimeError):
    """The container could not be built, booted or reached; the message says which step."""


def unavailable_reason() -> str | None:
    """Why the e2e machine cannot run on this host, or None when it can (given the tools)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root (systemd-nspawn, veth and debootstrap all need it)"
    if not Path("/proc/self/ns/pid").exists():
        return "no Linux namespaces on this host"
    if not Path("/sys/fs/cgroup").is_dir():
        return "no cgroup filesystem mounted at /sys/fs/cgroup"
    return None


def _run(cmd: Sequence[str], *, timeout: float = 600, check: bool = True,
         env: dict[str, str] | None = None, input_text: str | None = None,
         ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), check=False, capture_output=True, text=True, timeout=timeout, env=env,
                          input=input_text, stdin=None if input_text is not None else subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise MachineError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def ensure_host_tools() -> None:
    """Install debootstrap and systemd-container from Debian's packages when missing."""
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise MachineError(f"missing {', '.join(missing)} and no apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update"], env=env, timeout=600)
    _run(["apt-get", "install", "-y", "--no-install-recommends", *missing], env=env, timeout=900)


def rootfs_key(packages: Sequence[str] = PACKAGES) -> str:
    text = "\n".join([SUITE, MIRROR, *sorted(packages), "prep-v1"])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _prepare_rootfs(root: Path) -> None:
    """One-time edits of a fresh debootstrap tree, before it is cached."""
    (root / "etc/hostname").write_text("fractald-e2e\n")
    # A fresh machine-id on every boot of every copy, like a freshly imaged VPS.
    (root / "etc/machine-id").write_text("")
    # sshd is enabled by its package; make sure, since Ansible depends on it.
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "ssh.service"
    if not link.exists() and not link.is_symlink():
        link.symlink_to("/lib/systemd/system/ssh.service")
    # No getty on the nspawn console: nothing reads it and it only slows shutdown.
    for unit in ("console-getty.service", "getty@.service"):
        mask = root / "etc/systemd/system" / unit
        if not mask.exists():
            mask.symlink_to("/dev/null")


def base_rootfs(packages: Sequence[str] = PACKAGES) -> Path:
    """The cached Debian tree for `packages`, built with debootstrap on first use (~1 min)."""
    key = rootfs_key(packages)
    target = CACHE_DIR / f"rootfs-{SUITE}-{key}"
    with _locked(CACHE_DIR / f"rootfs-{key}.lock"):
        if (target / COMPLETE_MARK).exists():
            return target
        ensure_host_tools()
        building = CACHE_DIR / f"rootfs-{SUITE}-{key}.building"
        if building.exists():
            shutil.rmtree(building)
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", SUITE,
              str(building), MIRROR], timeout=1800)
        _prepare_rootfs(building)
        (building / COMPLETE_MARK).write_text(",".join(packages) + "\n")
        if target.exists():
            shutil.rmtree(target)
        building.rename(target)
        return target


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _namespace_init(ancestor: int) -> int | None:
    """The descendant of `ancestor` that is PID 1 of its own PID namespace, if any yet."""
    todo = _children(ancestor)
    while todo:
        pid = todo.pop()
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        nspid = next((ln.split()[1:] for ln in status.splitlines() if ln.startswith("NSpid:")), [])
        if len(nspid) > 1 and nspid[-1] == "1":
            return pid
        todo.extend(_children(pid))
    return None


def _free_slash30() -> tuple[str, str]:
    """A /30 in 10.213.0.0/16 that no host interface uses: (host address, guest address)."""
    used = _run(["ip", "-4", "-o", "addr", "show"]).stdout
    for _ in range(200):
        net = ipaddress.ip_network(f"10.213.{random.randrange(256)}.{4 * random.randrange(64)}/30")
        if str(net.network_address)[:-1] not in used:
            hosts = list(net.hosts())
            return str(hosts[0]), str(hosts[1])
    raise MachineError("no free /30 found in 10.213.0.0/16")


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    lines = Path("/proc/self/mounts").read_text().splitlines()
    return [line.split()[1] for line in lines if line.split()[1].startswith(prefix)]


class Machine:
    """One booted container. Create with `Machine.create()`, always end with `destroy()`."""

    def __init__(self, name: str, workdir: Path, root: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.root = root
        self.console_log = workdir / "console.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.leader: int | None = None
        self.host_ip = ""
        self.guest_ip = ""

    @property
    def veth(self) -> str:
        return f"ve-{self.name}"

    @classmethod
    def create(cls, packages: Sequence[str] = PACKAGES) -> Machine:
        """Copy the cached tree, boot it, address the veth; the caller must `destroy()`."""
        base = base_rootfs(packages)
        name = f"fde2e{os.getpid() % 10000:04d}{random.randrange(16**2):02x}"[:11]
        workdir = WORK_DIR / f"fractald-e2e-{name}"
        machine = cls(name, workdir, workdir / "root")
        try:
            workdir.mkdir(parents=True)
            _run(["cp", "-a", "--reflink=auto", str(base), str(machine.root)], timeout=600)
            machine.boot()
            machine.configure_network()
        except BaseException:
            machine.destroy()
            raise
        return machine

    def boot(self, timeout: float = 90) -> None:
        log = self.console_log.open("wb")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", str(self.root), "-b", "--register=no", "--keep-unit",
             "--network-veth", "-M", self.name, "--console=read-only"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        # nspawn -> nspawn (namespace setup) -> systemd: PID 1 of the new PID namespace is a
        # grandchild; other short-lived helpers come and go, so look for NSpid ending in 1.
        while self.leader is None:
            self._check_alive()
            self.leader = _namespace_init(self.proc.pid)
            if self.leader is None and time.monotonic() > deadline:
                raise MachineError(f"container did not start in {timeout}s:\n{self.console()}")
            time.sleep(0.1)
        while True:
            self._check_alive()
            state = self.run(["systemctl", "is-system-running"], check=False).stdout.strip()
            if state in ("running", "degraded"):
                return
            if time.monotonic() > deadline:
                raise MachineError(f"system state {state!r} after {timeout}s:\n{self.console()}")
            time.sleep(0.3)

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise MachineError(f"systemd-nspawn exited {self.proc.returncode}:\n{self.console()}")

    def console(self) -> str:
        try:
            return self.console_log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def configure_network(self, timeout: float = 30) -> None:
        self.host_ip, self.guest_ip = _free_slash30()
        _run(["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.veth])
        _run(["ip", "link", "set", self.veth, "up"])
        self.run(["ip", "addr", "add", f"{self.guest_ip}/30", "dev", "host0"])
        self.run(["ip", "link", "set", "host0", "up"])
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection((self.guest_ip, 22), 1):
                return
            if time.monotonic() > deadline:
                raise MachineError(f"ssh on {self.guest_ip}:22 not reachable in {timeout}s")
            time.sleep(0.2)

    def run(self, cmd: Sequence[str], *, check: bool = True, timeout: float = 120,
            input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `cmd` inside the container (all its namespaces), with a plain environment."""
        if self.leader is None:
            raise MachineError("machine is not booted")
        env = {"PATH": GUEST_PATH, "LANG": "C.UTF-8", "HOME": "/root", "TERM": "dumb"}
        return _run(["nsenter", "-t", str(self.leader), "-a", "--", *cmd], check=check,
                    timeout=timeout, env=env, input_text=input_text)

    def write_file(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write a file inside the container's tree (from the host side: no chroot needed)."""
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    def authorize_ssh_key(self, public_key: str) -> None:
        ssh_dir = self.root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.write_file("/root/.ssh/authorized_keys", public_key.strip() + "\n", 0o600)

    def destroy(self, report: Path | None = None) -> None:
        """Power off (or kill), remove the veth and the private tree. Safe to call twice.

        `report` receives how the shutdown went (timings and the console's tail).
        """
        started = time.monotonic()
        notes = []
        if self.proc is not None and self.proc.poll() is None:
            if self.leader is not None:
                with contextlib.suppress(Exception):
                    self.run(["systemctl", "poweroff", "--no-block"], check=False, timeout=15)
            try:
                self.proc.wait(timeout=30)
                notes.append(f"powered off in {time.monotonic() - started:.1f}s")
            except subprocess.TimeoutExpired:
                notes.append("poweroff timed out after 30s: killed")
                # Killing nspawn alone would orphan the container: kill its PID 1 first
                # (which takes the whole PID namespace down), then nspawn's process group.
                leader = _namespace_init(self.proc.pid)
                for pid, kill in ((leader, os.kill), (self.proc.pid, os.killpg)):
                    if pid is not None:
                        with contextlib.suppress(ProcessLookupError):
                            kill(pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.leader = None
        if Path(f"/sys/class/net/{self.veth}").exists():
            _run(["ip", "link", "del", self.veth], check=False)
        if self.workdir.exists():
            for mount in sorted(_mounts_under(self.workdir), reverse=True):
                _run(["umount", "-l", mount], check=False)
            if report is not None:
                report.write_text("\n".join([*notes, self.console()]))
            if not _mounts_under(self.workdir):
                shutil.rmtree(self.workdir, ignore_errors=True)
        notes.append(f"destroyed in {time.monotonic() - started:.1f}s")

"""Where the real programs are: the toolchain `make toolchain` built (or the user's own binaries).

Looked up in this order: `DR_TOOLCHAIN_BIN` (a bin directory), the newest directory under
`~/.cache/dr/toolchain/*/bin`, then PATH. `missing()` names what is not there, so callers can say
precisely what a test tier or a command cannot reach.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")
ENGINE = ("pulumi", "pulumi-resource-pulumi-python")
KUBERNETES_PROVIDER = ("pulumi-resource-kubernetes",)
KUBERNETES_PROVIDER_VERSION = "4.25.0"  # toolchain/build.sh builds it; pyproject.toml pins the SDK to match


def cache_root() -> Path:
    return Path(os.environ.get("DR_TOOLCHAIN_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                / "dr" / "toolchain")


@dataclass(frozen=True)
class Toolchain:
    bin_dirs: tuple[Path, ...]

    @classmethod
    def find(cls) -> Toolchain:
        dirs: list[Path] = []
        explicit = os.environ.get("DR_TOOLCHAIN_BIN")
        if explicit:
            dirs.append(Path(explicit))
        root = cache_root()
        if root.is_dir():
            built = sorted((p / "bin" for p in root.iterdir() if (p / "bin").is_dir()),
                           key=lambda p: p.stat().st_mtime, reverse=True)
            dirs += built
        return cls(tuple(dirs))

    def which(self, name: str) -> str | None:
        for directory in self.bin_dirs:
            candidate = directory / name
            if candidate.exists() and os.access(candidate, os.X_OK):
                return str(candidate)
        if name == "kubectl":
            return None  # Debian's kubectl is years older than the API server: only the toolchain's counts
        return shutil.which(name)

    def path(self, name: str) -> str:
        found = self.which(name)
        if found is None:
            raise FileNotFoundError(f"{name} is not installed; run `make toolchain` (builds it into {cache_root()})")
        return found

    def missing(self, names: tuple[str, ...]) -> list[str]:
        return [n for n in names if self.which(n) is None]

    def env_path(self) -> str:
        """PATH with the toolchain first, so the engine finds its plugins and scripts."""
        return os.pathsep.join([*(str(d) for d in self.bin_dirs), os.environ.get("PATH", "")])

    @property
    def pulumi_root(self) -> Path | None:
        """The directory whose bin/ holds `pulumi` (what the Automation API calls the root)."""
        found = self.which("pulumi")
        return Path(found).resolve().parent.parent if found else None

#!/usr/bin/env python3
"""The installed environment is the lock: every package `pip freeze` lists is pinned in
requirements.txt (and the files given after it) at that version, and every pin is installed.

    python -m pip freeze --exclude-editable | python .ci/check_lock.py requirements.txt [more.txt ...]

Versions compare as pip compares them (PEP 440): the pin torch==2.13.0 is met by a
build with a local label, such as 2.13.0+cpu from PyTorch's CPU index.
"""

from __future__ import annotations

import re
import sys

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name


def pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(==|@)\s*(.+)", line)
        if not m:
            raise SystemExit(f"cannot read {line!r}")
        name, op, rest = m.groups()
        if op == "@":  # a direct reference: its version is in the file name
            v = re.search(r"-([0-9][^-]*)-", rest.rsplit("/", 1)[-1])
            rest = v.group(1) if v else rest
        out[canonicalize_name(name)] = rest
    return out


def main() -> int:
    lock = {}
    for path in sys.argv[1:]:  # the lock and any file installed on top of it
        with open(path) as f:
            for name, version in pins(f).items():
                if lock.get(name, version) != version:
                    raise SystemExit(f"{path} pins {name}=={version}, "
                                     f"against {lock[name]} before it")
                lock[name] = version
    installed = pins(sys.stdin)
    problems = []
    for name, version in sorted(installed.items()):
        if name not in lock:
            problems.append(f"{name}=={version} is installed but not in the lock")
        elif version not in SpecifierSet(f"=={lock[name]}"):
            problems.append(f"{name}: installed {version}, the lock pins {lock[name]}")
    for name in sorted(set(lock) - set(installed)):
        problems.append(f"{name}=={lock[name]} is pinned but not installed")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"{len(installed)} installed packages, {len(lock)} pins: "
          + ("the environment is the lock" if not problems else f"{len(problems)} differences"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

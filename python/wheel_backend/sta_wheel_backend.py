"""A PEP 517 build backend for the `sliding-tile-attention` wheel (no build dependencies).

The wheel is the pure-Python package `sta` plus one C library it loads with ctypes, so building it is:
build the library with SwiftPM (release, Swift runtime linked statically), strip it, check that it needs
nothing but the C/C++ runtime of the system, and zip it with the package and the dist-info files.

    pip wheel --no-deps -w dist .                    # builds libsta_c.so, then the wheel
    pip wheel --no-deps -w dist . --config-settings library=/path/to/libsta_c.so   # a library built before

Settings (``--config-settings key=value``, or the environment variable in brackets):
  library   [STA_WHEEL_LIBRARY]   use this libsta_c.so instead of running swift build;
  platform  [STA_WHEEL_PLATFORM]  the platform tag (default: manylinux_2_<N>_x86_64, N the newest glibc
                                  symbol version the library needs); an older glibc than needed is refused.

Cost: the release build of the library (about two minutes on two cores when nothing is built), then a
few seconds of strip and compression.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Libraries a manylinux wheel may rely on the system for (the PEP 600 / auditwheel whitelist, the part
# this library can need). Anything else (the Swift runtime above all) must be linked in.
SYSTEM_LIBRARIES = {
    "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "libutil.so.1",
    "libstdc++.so.6", "libgcc_s.so.1", "ld-linux-x86-64.so.2",
}

# A fixed timestamp for every zip entry (SOURCE_DATE_EPOCH overrides): the same inputs give the same wheel.
DEFAULT_EPOCH = 315532800  # 1980-01-01, the earliest a zip file can record


# MARK: configuration


def _load_toml(path):
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib
    with open(path, "rb") as file:
        return tomllib.load(file)


def _project():
    data = _load_toml(os.path.join(ROOT, "pyproject.toml"))
    project = data["project"]
    settings = data.get("tool", {}).get("sta-wheel", {})
    return project, settings


def _version(settings):
    path = os.path.join(ROOT, settings.get("package", "python/sta"), "_version.py")
    text = open(path, encoding="utf-8").read()
    match = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", text, re.MULTILINE)
    if not match:
        raise RuntimeError(f"{path} does not define __version__ = \"...\"")
    return match.group(1)


def _setting(config_settings, key, environment):
    value = (config_settings or {}).get(key) or os.environ.get(environment)
    return value or None


def _distribution(name):
    return re.sub(r"[-_.]+", "_", name).lower()


# MARK: the library


def _build_library(product):
    command = ["swift", "build", "-c", "release", "--static-swift-stdlib", "--product", product]
    print("sta_wheel_backend: " + " ".join(command), file=sys.stderr)
    subprocess.run(command, cwd=ROOT, check=True, stdout=sys.stderr)
    binary_folder = subprocess.run(
        ["swift", "build", "-c", "release", "--static-swift-stdlib", "--show-bin-path"],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    return os.path.join(binary_folder, f"lib{product}.so")


def _tool(*names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError(f"none of {', '.join(names)} was found on PATH (binutils or LLVM tools are needed)")


def _dynamic_needs(path):
    """(needed libraries, glibc versions needed as (major, minor) tuples) from the ELF dynamic sections."""
    readelf = _tool("readelf", "llvm-readelf")
    dynamic = subprocess.run([readelf, "-d", "--wide", path], check=True, capture_output=True, text=True).stdout
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic))
    versions = subprocess.run([readelf, "-V", "--wide", path], check=True, capture_output=True, text=True).stdout
    glibc = {(int(a), int(b)) for a, b in re.findall(r"Name: GLIBC_(\d+)\.(\d+)", versions)}
    return needed, glibc


def _prepared_library(source, folder):
    """A stripped copy of ``source`` in ``folder``, checked to be self-contained; returns (path, glibc)."""
    if not os.path.isfile(source):
        raise RuntimeError(f"{source} does not exist; build it with swift build -c release --static-swift-stdlib "
                           "--product sta_c, or leave the library setting out to have it built")
    target = os.path.join(folder, "libsta_c.so")
    shutil.copyfile(source, target)
    subprocess.run([_tool("strip", "llvm-strip"), "--strip-unneeded", target], check=True)
    os.chmod(target, 0o755)
    needed, glibc = _dynamic_needs(target)
    foreign = sorted(needed - SYSTEM_LIBRARIES)
    if foreign:
        raise RuntimeError(
            f"{source} needs {', '.join(foreign)}, which a wheel cannot rely on the system for; build it with "
            "--static-swift-stdlib in the release configuration (the STACLibraryLinkage target links the "
            "Swift runtime statically there)")
    return target, max(glibc, default=(2, 17))


def _platform_tag(config_settings, glibc):
    major, minor = glibc
    requested = _setting(config_settings, "platform", "STA_WHEEL_PLATFORM")
    if requested is None:
        return f"manylinux_{major}_{minor}_x86_64"
    match = re.fullmatch(r"manylinux_(\d+)_(\d+)_x86_64", requested)
    if match and (int(match.group(1)), int(match.group(2))) < glibc:
        raise RuntimeError(
            f"platform {requested} promises glibc {match.group(1)}.{match.group(2)}, but the library needs "
            f"GLIBC_{major}.{minor}; build it on an older system (e.g. a manylinux_2_28 image) instead")
    return requested


# MARK: metadata


def _metadata(project, version):
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {version}",
    ]
    if "description" in project:
        lines.append(f"Summary: {project['description']}")
    if "requires-python" in project:
        lines.append(f"Requires-Python: {project['requires-python']}")
    for classifier in project.get("classifiers", []):
        lines.append(f"Classifier: {classifier}")
    for requirement in project.get("dependencies", []):
        lines.append(f"Requires-Dist: {requirement}")
    for extra, requirements in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        for requirement in requirements:
            lines.append(f'Requires-Dist: {requirement}; extra == "{extra}"')
    readme = project.get("readme")
    body = ""
    if readme:
        lines.append("Description-Content-Type: text/markdown")
        body = open(os.path.join(ROOT, readme), encoding="utf-8").read()
    return "\n".join(lines) + "\n\n" + body


def _wheel_file(tag):
    return ("Wheel-Version: 1.0\nGenerator: sta_wheel_backend\nRoot-Is-Purelib: false\n"
            f"Tag: {tag}\n")


# MARK: PEP 517 hooks


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    project, settings = _project()
    version = _version(settings)
    name = f"{_distribution(project['name'])}-{version}.dist-info"
    folder = os.path.join(metadata_directory, name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "METADATA"), "w", encoding="utf-8") as file:
        file.write(_metadata(project, version))
    with open(os.path.join(folder, "WHEEL"), "w", encoding="utf-8") as file:
        # The platform is only known once the library is built; the wheel itself carries the real tag.
        file.write(_wheel_file("py3-none-linux_x86_64"))
    return name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project, settings = _project()
    version = _version(settings)
    distribution = _distribution(project["name"])
    library = _setting(config_settings, "library", "STA_WHEEL_LIBRARY")
    if library is None:
        library = _build_library(settings.get("product", "sta_c"))
    with tempfile.TemporaryDirectory() as scratch:
        stripped, glibc = _prepared_library(os.path.abspath(library), scratch)
        tag = f"py3-none-{_platform_tag(config_settings, glibc)}"
        name = f"{distribution}-{version}-{tag}.whl"
        files = _package_files(settings)
        files.append(("sta/libsta_c.so", open(stripped, "rb").read(), 0o755))
        info = f"{distribution}-{version}.dist-info"
        files.append((f"{info}/METADATA", _metadata(project, version).encode(), 0o644))
        files.append((f"{info}/WHEEL", _wheel_file(tag).encode(), 0o644))
        files.append((f"{info}/top_level.txt", b"sta\n", 0o644))
        os.makedirs(wheel_directory, exist_ok=True)
        _write_wheel(os.path.join(wheel_directory, name), files, f"{info}/RECORD")
    print(f"sta_wheel_backend: wrote {name} (library needs glibc {glibc[0]}.{glibc[1]})", file=sys.stderr)
    return name


def _package_files(settings):
    """Every .py file of the package, subpackages included (sta/diffusers/, sta/parallel/, ...)."""
    package = os.path.join(ROOT, settings.get("package", "python/sta"))
    files = []
    for folder, subfolders, entries in os.walk(package):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__" and not d.startswith("."))
        for entry in sorted(entries):
            if entry.endswith(".py"):
                path = os.path.join(folder, entry)
                name = "sta/" + os.path.relpath(path, package).replace(os.sep, "/")
                files.append((name, open(path, "rb").read(), 0o644))
    header = settings.get("header")
    if header:
        files.append(("sta/include/sta.h", open(os.path.join(ROOT, header), "rb").read(), 0o644))
    return files


def _write_wheel(path, files, record_name):
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))
    stamp = time.gmtime(max(epoch, DEFAULT_EPOCH))[:6]
    record = io.StringIO()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data, mode in files:
            entry = zipfile.ZipInfo(name, date_time=stamp)
            entry.external_attr = (0o100000 | mode) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data, compresslevel=9)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.write(f"{name},sha256={digest},{len(data)}\n")
        record.write(f"{record_name},,\n")
        entry = zipfile.ZipInfo(record_name, date_time=stamp)
        entry.external_attr = (0o100644) << 16
        entry.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(entry, record.getvalue(), compresslevel=9)

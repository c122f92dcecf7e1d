"""The wheel's build backend (python/wheel_backend) on the library this test session loaded: the wheel's
files, tag, metadata and RECORD, and the checks that refuse a library needing the Swift runtime or a
platform tag older than the glibc the library needs. No torch needed. (The full install-and-run check is
scripts/build_wheel.sh --check, a CI step.)"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "python", "wheel_backend"))

import sta  # noqa: E402

try:
    sta.library()
except OSError as error:  # pragma: no cover - depends on the build
    pytest.skip(f"libsta_c.so not available: {error}", allow_module_level=True)
if not (shutil.which("readelf") or shutil.which("llvm-readelf")) or not (
        shutil.which("strip") or shutil.which("llvm-strip")):
    pytest.skip("readelf and strip are needed", allow_module_level=True)
try:
    import tomllib  # noqa: F401
except ModuleNotFoundError:
    pytest.importorskip("tomli")

import sta_wheel_backend as backend  # noqa: E402


def needs_swift_runtime(path):
    needed, _ = backend._dynamic_needs(path)
    return any(name.startswith("libswift") for name in needed)


def test_wheel_from_the_loaded_library(tmp_path):
    library = sta.library_path()
    settings = {"library": library}
    if needs_swift_runtime(library):
        # A debug or non-static build: the backend refuses it rather than ship a library that cannot load.
        with pytest.raises(RuntimeError, match="static-swift-stdlib"):
            backend.build_wheel(str(tmp_path), settings)
        return
    name = backend.build_wheel(str(tmp_path), settings)
    match = re.fullmatch(r"sliding_tile_attention-(.+)-py3-none-manylinux_(\d+)_(\d+)_x86_64\.whl", name)
    assert match, name
    assert match.group(1) == sta.__version__
    with zipfile.ZipFile(tmp_path / name) as archive:
        names = set(archive.namelist())
        info = f"sliding_tile_attention-{sta.__version__}.dist-info"
        for required in ("sta/__init__.py", "sta/_version.py", "sta/ops.py", "sta/attention.py", "sta/plan.py",
                         "sta/libsta_c.so", "sta/include/sta.h", f"{info}/METADATA", f"{info}/WHEEL",
                         f"{info}/RECORD"):
            assert required in names, required
        assert not any("wheel_backend" in n or "tests/" in n or n.endswith(".pyc") for n in names)
        # Every module of the package, subpackages included.
        package = os.path.join(ROOT, "python", "sta")
        for folder, _, entries in os.walk(package):
            for entry in entries:
                if entry.endswith(".py"):
                    relative = os.path.relpath(os.path.join(folder, entry), package).replace(os.sep, "/")
                    assert f"sta/{relative}" in names, relative
        metadata = archive.read(f"{info}/METADATA").decode()
        assert "Name: sliding-tile-attention" in metadata
        assert f"Version: {sta.__version__}" in metadata
        assert "Requires-Dist: numpy" in metadata
        assert re.search(r'Requires-Dist: nvidia-cuda-nvrtc[^;]*; extra == "cuda"', metadata)
        wheel = archive.read(f"{info}/WHEEL").decode()
        assert "Root-Is-Purelib: false" in wheel and f"Tag: py3-none-manylinux_{match.group(2)}_" in wheel
        # RECORD lists every other file with its sha256 and size.
        record = archive.read(f"{info}/RECORD").decode().splitlines()
        listed = {}
        for line in record:
            path, digest, size = line.rsplit(",", 2)
            listed[path] = (digest, size)
        assert set(listed) == names
        for path, (digest, size) in listed.items():
            if path.endswith("RECORD"):
                assert digest == "" and size == ""
                continue
            data = archive.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={expected}" and int(size) == len(data), path
        # The bundled library is stripped and executable.
        entry = archive.getinfo("sta/libsta_c.so")
        assert (entry.external_attr >> 16) & 0o777 == 0o755
        assert entry.file_size <= os.path.getsize(library)
        (tmp_path / "lib.so").write_bytes(archive.read("sta/libsta_c.so"))
    symbols = subprocess.run(["readelf", "-S", "--wide", str(tmp_path / "lib.so")], capture_output=True,
                             text=True).stdout
    assert ".symtab" not in symbols
    # The tag is the newest glibc the library needs; an older one is refused.
    _, glibc = backend._dynamic_needs(str(tmp_path / "lib.so"))
    assert (int(match.group(2)), int(match.group(3))) == max(glibc)
    if max(glibc) > (2, 17):
        with pytest.raises(RuntimeError, match="promises glibc 2.17"):
            backend.build_wheel(str(tmp_path / "other"), {**settings, "platform": "manylinux_2_17_x86_64"})


def test_a_missing_library_is_reported(tmp_path):
    with pytest.raises(RuntimeError, match="does not exist"):
        backend.build_wheel(str(tmp_path), {"library": str(tmp_path / "nothing.so")})


def test_metadata_hook_names_the_distribution(tmp_path):
    name = backend.prepare_metadata_for_build_wheel(str(tmp_path))
    assert name == f"sliding_tile_attention-{sta.__version__}.dist-info"
    assert f"Version: {sta.__version__}" in (tmp_path / name / "METADATA").read_text()


def test_library_search_order(monkeypatch, tmp_path):
    from sta import _library

    package = os.path.join(ROOT, "python", "sta")
    monkeypatch.setenv("STA_LIBRARY", str(tmp_path))
    candidates = _library._candidates()
    assert candidates[0] == (os.path.join(package, "libsta_c.so"), "bundled")
    assert candidates[1] == (str(tmp_path / "libsta_c.so"), "$STA_LIBRARY")   # a folder names its libsta_c.so
    assert [origin for _, origin in candidates[2:]] == ["python/", "build tree", "build tree"]
    assert candidates[3][0].endswith(os.path.join(".build", "release", "libsta_c.so"))
    monkeypatch.delenv("STA_LIBRARY")
    assert "$STA_LIBRARY" not in [origin for _, origin in _library._candidates()]

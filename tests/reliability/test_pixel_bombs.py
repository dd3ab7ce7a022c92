"""Pixel bombs (issue 16, item 5): an image over the pixel budget never costs its full decode.

A 0.5 MB PNG can declare 13000x13000 pixels (0.7 GB decoded): it was decoded in full and
Pillow printed its DecompressionBombWarning. Now the budget (``Limits.max_image_pixels``,
by default Pillow's own 89,478,485) is checked on the header before any pixel is
decoded: a baseline JPEG over it is decoded at 1/2 to 1/8 scale, anything else is refused
naming the file, its pixels and the budget. Memory is measured in a child process (the
kernel's peak resident size: Pillow's pixel buffers are C allocations tracemalloc cannot
see).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import PIL.Image
import pytest
from PIL import Image
from rel_helpers import DIMS, dump, persistent

from gemb2 import Embedder
from gemb2.errors import MediaReadError
from gemb2.ingest.loading import load_file
from gemb2.model.catalog import Limits
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator

MB = 1024 * 1024

# Runs in a child process: the peak memory of checking one image the two ways a user
# reaches it (an Embedder given the path, and the loader every wrapper and the CLI use).
# Writing 5 to clear_refs resets the kernel's peak (VmHWM), so the peak of the checks
# alone is measured, whatever importing cost before. Warnings print to stderr as a user
# would see them.
CHILD = r"""
import json, sys, warnings
warnings.simplefilter("always")
from pathlib import Path
import PIL.Image, PIL.JpegImagePlugin, PIL.PngImagePlugin
from gemb2 import Embedder, Limits
from gemb2.errors import InputError
from gemb2.ingest.loading import load_file

path, base_url, budget = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
limits = Limits(max_image_pixels=budget)
embedder = Embedder(base_url=base_url, dimensions=128, limits=limits)
out = {}


def kb(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))


def peak():
    return kb("VmHWM:")


try:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    start = kb("VmRSS:")
except OSError:  # no reset allowed here: the peak since start, a weaker bound
    import resource

    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    start = peak()
for how in ("embed", "load"):
    try:
        if how == "embed":
            out[how] = len(embedder.embed([path])[0])
        else:
            out[how] = [it.media[0].data.hex() for it in load_file(path, limits)]
    except InputError as exc:
        out[how] = f"{type(exc).__name__}: {exc}"
out["growth_kb"] = peak() - start
print(json.dumps(out))
"""


def _check_in_child(path: Path, emulator: Emulator, budget: int) -> tuple[dict[str, Any], str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY", "GEMINI_API_KEY")}
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), emulator.base_url, str(budget)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout), run.stderr


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = samples.make_large_png(tmp_path_factory.mktemp("bomb") / "bomb.png", 13000, 13000)
    assert path.stat().st_size < 700_000  # the "657 KB PNG"
    return path


def test_the_pixel_budget_is_a_limit_with_pillows_default() -> None:
    assert Limits().max_image_pixels == PIL.Image.MAX_IMAGE_PIXELS == 89_478_485
    assert "memory budget" in (Limits.model_fields["max_image_pixels"].description or "")


def test_a_png_declaring_13000x13000_pixels_is_refused_without_decoding_it(
    bomb: Path, emulator: Emulator
) -> None:
    out, stderr = _check_in_child(bomb, emulator, PIL.Image.MAX_IMAGE_PIXELS)
    for how in ("embed", "load"):
        message = out[how]
        assert isinstance(message, str) and message.startswith("MediaReadError: "), message
        assert str(bomb) in message
        assert "13000x13000 = 169,000,000 pixels: too large to decode safely" in message
        assert "(about 676 MB decoded)" in message
        assert "89,478,485 pixels (Limits.max_image_pixels)" in message
    assert out["growth_kb"] < 50 * 1024, out["growth_kb"]  # a full decode: ~650 MB
    assert stderr == ""  # no DecompressionBombWarning, no library text at all
    assert emulator.stats.requests == 0


def test_a_baseline_jpeg_over_the_budget_is_decoded_at_a_reduced_scale(
    tmp_path: Path, emulator: Emulator
) -> None:
    jpeg = samples.make_jpeg(tmp_path / "poster.jpg", "a wide poster", size=(6000, 4000))
    budget = 1_000_000  # 24 MP over it: 1/8 scale, 750x500
    out, stderr = _check_in_child(jpeg, emulator, budget)
    assert stderr == ""
    assert out["embed"] == 128  # the user's item: checked on the small decode, sent as given
    assert emulator.stats.items == 1
    (piece,) = out["load"]  # the loader sends the reduced image it decoded
    with Image.open(io.BytesIO(bytes.fromhex(piece))) as img:
        assert img.format == "JPEG" and img.size == (750, 500)
        assert img.getexif()[samples.EXIF_IMAGE_DESCRIPTION] == "a wide poster"
        assert img.info["comment"] == b"a wide poster"
    # a full decode holds 24 MP x 4 bytes (~92 MB); 1/8 scale about 1.5 MB
    assert out["growth_kb"] < 40 * 1024, out["growth_kb"]


def test_a_progressive_jpeg_over_the_budget_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "progressive.jpg"
    Image.new("RGB", (1200, 1000), (200, 30, 30)).save(path, "JPEG", progressive=True)
    with pytest.raises(MediaReadError) as info:
        load_file(path, Limits(max_image_pixels=1_000_000))
    message = str(info.value)
    assert message.startswith(str(path))
    assert "1200x1000 = 1,200,000 pixels: too large to decode safely" in message
    assert "a progressive JPEG cannot be decoded smaller" in message


def test_a_lower_budget_in_the_settings_refuses_before_any_request(
    tmp_path: Path, emulator: Emulator
) -> None:
    png = samples.make_png(tmp_path / "photo.png", "a photo", size=(100, 100))
    small = Limits(max_image_pixels=9_999)
    over = r"item 1 .*100x100 = 10,000 pixels.*limit: 9,999 pixels"
    with (
        Embedder(base_url=emulator.base_url, dimensions=DIMS, limits=small) as embedder,
        pytest.raises(MediaReadError, match=over),
    ):
        embedder.embed(["a text", png])
    assert emulator.stats.requests == 0
    with Embedder(base_url=emulator.base_url, dimensions=DIMS) as embedder:
        assert len(embedder.embed([png])) == 1  # within the default budget: as before


def test_gemb2_index_skips_the_bomb_with_one_line_and_no_library_warning(
    bomb: Path, tmp_path: Path, emulator: Emulator
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(bomb.read_bytes())
    samples.make_png(folder / "holiday.png", "a beach at sunset", size=(64, 64))
    db = tmp_path / "db"
    argv = [sys.executable, "-m", "gemb2.cli.main", "index", str(folder), "--db", str(db)]
    argv += ["--base-url", emulator.base_url, "--dimensions", str(DIMS), "-q"]
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY", "GEMINI_API_KEY")}
    run = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr  # only the skip line: no warning, no traceback
    assert lines[0].startswith(
        f"skipped {folder / 'bomb.png'}: image is 13000x13000 = 169,000,000 pixels"
    )
    assert "Warning" not in run.stderr
    records = dump(persistent(db).get_collection("gemb2"))
    assert [Path(m["source"]).name for _, m in records.values()] == ["holiday.png"]
    assert emulator.stats.items == 1

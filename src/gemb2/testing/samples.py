"""Real, small sample media for tests, the CLI quick start and the examples.

Every file carries its description *inside* it (PNG text chunks, JPEG EXIF
ImageDescription, audio/video container ``title``/``comment`` tags, a PDF text
layer), because the offline emulator derives a media vector from the text a file
carries: files with similar descriptions get similar vectors.
"""

from __future__ import annotations

import math
import re
import struct
import zlib
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image

Color = tuple[int, int, int]

__all__ = [
    "SAMPLE_PDF_PAGES",
    "SAMPLE_TEXTS",
    "make_jpeg",
    "make_large_png",
    "make_mp3",
    "make_mp4",
    "make_pdf",
    "make_png",
    "make_sample_corpus",
    "make_wav",
    "video_encoder",
]

EXIF_IMAGE_DESCRIPTION = 0x010E
SHAPES = ("circle", "square", "triangle", "star")

# The README quick start's sample: one distinct topic per page / file.
SAMPLE_PDF_PAGES: tuple[str, ...] = (
    "Volcanoes form where molten rock from the mantle reaches the surface and erupts as lava.",
    "Honeybees live in colonies, collect nectar from flowers and turn it into honey.",
    "Glaciers are slow rivers of ice that carve deep U-shaped valleys into mountains.",
    "Coral reefs are underwater ecosystems built by tiny animals in warm shallow seas.",
    "Black holes are regions of space where gravity is so strong that light cannot escape.",
    "Photosynthesis lets green plants turn sunlight, water and carbon dioxide into sugar.",
    "The Roman aqueducts carried fresh water across valleys to ancient cities.",
    "Chess is a strategy board game in which two players try to checkmate the king.",
)
SAMPLE_TEXTS: dict[str, str] = {
    "baking_bread.txt": (
        "Baking bread at home: mix flour, water, yeast and salt, knead the dough, "
        "let it rise for an hour and bake it in a hot oven until the crust is golden."
    ),
    "solar_system.txt": (
        "The solar system has eight planets orbiting the Sun. Jupiter is the largest, "
        "Mercury is closest to the Sun, and Saturn is famous for its bright rings."
    ),
    "marathon_training.txt": (
        "Training for a marathon means running several times a week, slowly increasing "
        "the long run, resting enough and eating well before race day."
    ),
}


# --------------------------------------------------------------------------- images


def _draw(shape: str, color: Color, size: tuple[int, int]) -> Image:
    from PIL import Image as PILImage
    from PIL import ImageDraw

    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")
    w, h = size
    img = PILImage.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    cx, cy, r = w / 2, h / 2, min(w, h) * 0.4
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=color)
    elif shape == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=color)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=color)
    else:
        points = []
        for i in range(10):
            radius = r if i % 2 == 0 else r * 0.4
            angle = -math.pi / 2 + i * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        draw.polygon(points, fill=color)
    return img


def make_png(
    path: str | Path,
    description: str,
    *,
    color: Color = (255, 0, 0),
    shape: str = "circle",
    size: tuple[int, int] = (256, 256),
) -> Path:
    """A PNG of one shape whose ``Description`` and ``Title`` text chunks hold ``description``."""
    from PIL import PngImagePlugin

    path = Path(path)
    img = _draw(shape, color, size)
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", description)
    info.add_text("Description", description)
    img.save(path, format="PNG", pnginfo=info)
    return path


def make_large_png(path: str | Path, width: int, height: int, *, color: Color = (0, 0, 0)) -> Path:
    """An RGB PNG of one colour whose pixels are never in memory, made in well under a second.

    A pixel bomb for tests of the pixel budget: 13000x13000 pixels take about 0.5 MB of
    file and 0.7 GB decoded. A ~1 MB run of rows is deflated once with a full flush (no
    back-reference crosses it), so its bytes are repeated; only the checksum sees every row.
    """
    path = Path(path)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    row = b"\x00" + bytes(color) * width  # filter type 0, then the pixels
    per_block = max(1, (1 << 20) // len(row))
    blocks, rest = divmod(height, per_block)
    block = row * per_block
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: the header is ours
    packed = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    last = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = last.compress(row * rest) + last.flush()
    check = 1
    for _ in range(blocks):
        check = zlib.adler32(block, check)
    check = zlib.adler32(row * rest, check)
    stream = b"\x78\xda" + packed * blocks + tail + struct.pack(">I", check)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")
    )
    return path


def make_jpeg(
    path: str | Path,
    description: str,
    *,
    color: Color = (255, 0, 0),
    shape: str = "circle",
    size: tuple[int, int] = (256, 256),
    quality: int = 90,
) -> Path:
    """A JPEG of one shape with ``description`` in EXIF ImageDescription (0x010E).

    EXIF ASCII cannot hold non-ASCII characters (Pillow writes them as ``?``), so
    the description also goes, UTF-8 encoded, into the JPEG COM marker
    (``Image.info["comment"]``)."""
    from PIL import Image as PILImage

    path = Path(path)
    img = _draw(shape, color, size)
    exif = PILImage.Exif()
    exif[EXIF_IMAGE_DESCRIPTION] = description
    img.save(path, format="JPEG", exif=exif, quality=quality, comment=description.encode("utf-8"))
    return path


# --------------------------------------------------------------------------- audio / video


def _tags(description: str) -> dict[str, str]:
    return {"title": description, "comment": description} if description else {}


def _tone(start: int, count: int, freq: float, rate: int, channels: int = 1) -> np.ndarray:
    """``count`` samples of a sine tone starting at sample ``start``, float32 in -0.5..0.5."""
    t = (np.arange(start, start + count, dtype=np.float64)) / rate
    wave = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.tile(wave, (channels, 1))


def _write_audio(
    path: Path,
    fmt: str,
    codec: str,
    sample_format: str,
    seconds: float,
    description: str,
    freq: float,
    sample_rate: int,
    bit_rate: int | None = None,
) -> Path:
    import av

    total = round(seconds * sample_rate)
    with av.open(str(path), mode="w", format=fmt) as out:
        out.metadata.update(_tags(description))
        stream: Any = out.add_stream(codec, rate=sample_rate, layout="mono")
        if bit_rate:
            stream.bit_rate = bit_rate
        chunk = 4096
        for start in range(0, total, chunk):
            samples = _tone(start, min(chunk, total - start), freq, sample_rate)
            if sample_format == "s16":
                frame = av.AudioFrame.from_ndarray(
                    (samples * 32767).astype(np.int16), format="s16", layout="mono"
                )
            else:
                frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = start
            frame.time_base = Fraction(1, sample_rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def make_wav(
    path: str | Path,
    seconds: float,
    *,
    description: str = "",
    freq: float = 440.0,
    sample_rate: int = 16000,
    header_seconds: float | None = None,
) -> Path:
    """A mono 16-bit PCM WAV sine tone; ``description`` goes into the RIFF INFO
    ``title``/``comment`` tags, which PyAV reads back from ``container.metadata``.

    ``header_seconds`` makes a header that lies: its RIFF and data chunk sizes claim that
    many seconds while all ``seconds`` of samples follow (a recorder that never rewrote
    its header), and the INFO tags go before the data."""
    path = _write_audio(
        Path(path), "wav", "pcm_s16le", "s16", seconds, description, freq, sample_rate
    )
    if header_seconds is not None:
        data = bytearray(path.read_bytes())
        pos = 12
        while data[pos : pos + 4] != b"data":
            pos += 8 + int.from_bytes(data[pos + 4 : pos + 8], "little")
            pos += pos & 1
        claimed = round(header_seconds * sample_rate) * 2
        data[4:8] = struct.pack("<I", pos + claimed)  # RIFF size: all but its first 8 bytes
        data[pos + 4 : pos + 8] = struct.pack("<I", claimed)
        path.write_bytes(bytes(data))
    return path


def make_mp3(
    path: str | Path,
    seconds: float,
    *,
    description: str = "",
    freq: float = 440.0,
    sample_rate: int = 22050,
) -> Path:
    """A mono MP3 (LAME) sine tone with ID3 ``title``/``comment`` tags."""
    return _write_audio(
        Path(path), "mp3", "libmp3lame", "fltp", seconds, description, freq, sample_rate, 32000
    )


def video_encoder() -> str:
    """The best video encoder this PyAV build ships: libx264 (H.264), else mpeg4."""
    import av

    for name in ("libx264", "h264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
        except (av.FFmpegError, ValueError):  # UnknownCodecError is a ValueError
            continue
        return name
    raise RuntimeError("this PyAV build has no H.264 or MPEG-4 video encoder")


def make_mp4(
    path: str | Path,
    seconds: float,
    *,
    description: str = "",
    fps: int = 10,
    size: tuple[int, int] = (160, 120),
    with_audio: bool = False,
    gop: int | None = None,
) -> Path:
    """A small H.264 (or MPEG-4 Part 2) MP4: a coloured square moving over a gradient.

    ``gop`` is the keyframe interval in frames (default: one every 2 s, so
    stream-copy cutting has keyframes to cut on); scene-cut keyframes are off so
    the interval is exact. ``with_audio`` adds an AAC sine tone. A 10-minute
    video at the defaults takes a few seconds of CPU.
    """
    import av

    path = Path(path)
    w, h = size
    if w % 2 or h % 2:
        raise ValueError("width and height must be even for yuv420p")
    gop = gop or max(1, 2 * fps)
    nframes = max(1, round(seconds * fps))
    codec = video_encoder()
    with av.open(str(path), mode="w", format="mp4") as out:
        out.metadata.update(_tags(description))
        # no scene-cut keyframes: keep the keyframe interval exactly ``gop``
        if "264" in codec:
            options = {"preset": "ultrafast", "tune": "zerolatency", "sc_threshold": "0"}
        else:
            options = {"sc_threshold": "1000000000"}
        vstream: Any = out.add_stream(codec, rate=fps, options=options)
        vstream.width, vstream.height = w, h
        vstream.pix_fmt = "yuv420p"
        vstream.codec_context.gop_size = gop
        vstream.codec_context.time_base = Fraction(1, fps)
        astream: Any = None
        arate = 16000
        if with_audio:
            astream = out.add_stream("aac", rate=arate, layout="mono")
            astream.bit_rate = 32000

        xs = np.linspace(0, 255, w, dtype=np.float32)
        base = np.empty((h, w, 3), dtype=np.uint8)
        side = max(4, min(w, h) // 4)
        audio_done = 0
        for i in range(nframes):
            shift = (i * 3) % 256
            base[:, :, 0] = ((xs + shift) % 256).astype(np.uint8)[None, :]
            base[:, :, 1] = 96
            base[:, :, 2] = 255 - base[:, :, 0]
            x = (i * 4) % (w - side)
            y = (i * 2) % (h - side)
            base[y : y + side, x : x + side] = (255, 255, 0)
            frame = av.VideoFrame.from_ndarray(base, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in vstream.encode(frame):
                out.mux(packet)
            if astream is not None:
                target = round((i + 1) * arate / fps)
                while audio_done < target:
                    n = min(1024, target - audio_done)
                    aframe = av.AudioFrame.from_ndarray(
                        _tone(audio_done, n, 440.0, arate), format="fltp", layout="mono"
                    )
                    aframe.sample_rate = arate
                    aframe.pts = audio_done
                    aframe.time_base = Fraction(1, arate)
                    for packet in astream.encode(aframe):
                        out.mux(packet)
                    audio_done += n
        for packet in vstream.encode(None):
            out.mux(packet)
        if astream is not None:
            for packet in astream.encode(None):
                out.mux(packet)
    return path


# --------------------------------------------------------------------------- PDF


def _pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsi (cp1252); characters outside it become '?'."""
    raw = text.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _wrap(text: str, width: int = 80) -> list[str]:
    lines: list[str] = []
    for para in text.splitlines() or [""]:
        words = re.split(r"\s+", para.strip())
        line = ""
        for word in words:
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return lines


def make_pdf(path: str | Path, pages: Sequence[str], *, title: str | None = None) -> Path:
    """A valid multi-page Letter PDF whose pages carry a real Helvetica text layer
    (WinAnsi: characters outside cp1252 become ``?``; long lines are wrapped, so
    compare extracted text with whitespace normalised). ``title`` goes in /Info.

    Written by hand (no PDF-writing library with text is installed): one content
    stream per page drawing the page's text line by line with ``Tj``, so
    ``pypdf``'s ``extract_text`` returns each page's text.
    """
    path = Path(path)
    if not pages:
        raise ValueError("a PDF needs at least one page")
    n = len(pages)
    # objects: 1 catalog, 2 page tree, 3 font, 4 info, then (page, contents) pairs
    objects: dict[int, bytes] = {}
    kids = " ".join(f"{5 + 2 * i} 0 R" for i in range(n))
    objects[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[2] = f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode()
    objects[3] = (
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    info = b"<< /Producer (gemb2.testing.samples)"
    if title:
        info += b" /Title " + _pdf_string(title)
    objects[4] = info + b" >>"
    for i, text in enumerate(pages):
        page_id, content_id = 5 + 2 * i, 6 + 2 * i
        ops = [b"BT", b"/F1 12 Tf", b"14 TL", b"72 720 Td"]
        for j, line in enumerate(_wrap(text)):
            if j:
                ops.append(b"T*")
            ops.append(_pdf_string(line) + b" Tj")
        ops.append(b"ET")
        stream = b"\n".join(ops)
        objects[page_id] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> " + f"/Contents {content_id} 0 R >>".encode()
        )
        objects[content_id] = (
            f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream"
        )

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for num in sorted(objects):
        offsets[num] = len(out)
        out += f"{num} 0 obj\n".encode() + objects[num] + b"\nendobj\n"
    xref_at = len(out)
    size = max(objects) + 1
    out += f"xref\n0 {size}\n".encode() + b"0000000000 65535 f \n"
    for num in range(1, size):
        out += f"{offsets[num]:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {size} /Root 1 0 R /Info 4 0 R >>\nstartxref\n{xref_at}\n%%EOF\n"
    ).encode()
    path.write_bytes(bytes(out))
    return path


# --------------------------------------------------------------------------- corpus


def make_sample_corpus(directory: str | Path) -> list[Path]:
    """A small mixed-media folder for the README quick start (runs in a second or two):
    four images, a 3 s WAV, a 4 s MP4, an 8-page PDF and three text files."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    files = [
        make_png(d / "red_circle.png", "a red circle on white", color=(220, 20, 20)),
        make_png(
            d / "blue_square.png", "a blue square on white", color=(20, 40, 220), shape="square"
        ),
        make_png(
            d / "green_triangle.png",
            "a green triangle on white",
            color=(20, 160, 40),
            shape="triangle",
        ),
        make_jpeg(
            d / "yellow_star.jpg", "a yellow star on white", color=(250, 210, 0), shape="star"
        ),
        make_wav(d / "piano_note.wav", 3, description="a piano playing a single note"),
        make_mp4(d / "ocean_waves.mp4", 4, description="ocean waves at a beach"),
        make_pdf(d / "science_facts.pdf", SAMPLE_PDF_PAGES, title="Eight short science facts"),
    ]
    for name, text in SAMPLE_TEXTS.items():
        p = d / name
        p.write_text(text + "\n", encoding="utf-8")
        files.append(p)
    return files

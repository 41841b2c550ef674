"""Image decoding: any file a user has (16-bit, CMYK, palette, EXIF-rotated) to upright RGB, once, in threads."""
from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, features
from tqdm import tqdm


# PIL warns of any image over 89 MP as a possible decompression bomb, on stderr where users see it; the pixel limits
# here decide instead (and PIL's own error, at twice its limit, still refuses the rest).
warnings.simplefilter("ignore", Image.DecompressionBombWarning)
# A JPEG over max_pixels, up to this many times it, is decoded at half its width and height in the DCT domain, a
# quarter of the pixels: a 108 MP photo (12000x9000) then takes 81 MB of memory instead of 324 MB, and 0.3 s to
# decode.
JPEG_REDUCE = 4
# Photo formats PIL has no decoder for here; a clear word beats "no known image format".
NOT_SUPPORTED = {".heic": "HEIC", ".heif": "HEIF"}
# What data sets, the gallery and prediction read as images (.jfif and .jpe are JPEGs; AVIF where Pillow has libavif)
IMAGE_EXTS = ({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
               ".pbm", ".pnm"} | ({".avif"} if features.check("avif") else set()))


class ImageError(Exception):
    """An image file that cannot be decoded (corrupt, truncated, too large)."""


def to_rgb(im: Image.Image) -> Image.Image:
    """An RGB image of any PIL mode: 16- and 32-bit gray scaled to 8 bits, transparency on white."""
    if im.mode.startswith("I") or im.mode == "F":
        # 16/32-bit grayscale: PIL's convert() clips everything above 255 to white, so scale by the container's
        # range (16-bit files) or, for 32-bit data of unknown range, by what the values show.
        a = np.array(im, dtype=np.float32)  # float32 holds 16 bits exactly; worked on in place: a 49 MP scan is big
        if im.mode.startswith("I;16"):
            top = 65535.0
        elif im.mode == "F" and a.max() <= 1.0:
            top = 1.0
        else:
            top = 255.0 if a.max() <= 255 else 65535.0 if a.max() <= 65535 else float(a.max())
        a *= np.float32(255.0 / top)
        a += np.float32(0.5)
        im = Image.fromarray(np.clip(a, 0, 255, out=a).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent areas become white, not whatever colour the hidden pixels happened to hold.
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def _open_rgb(path, max_pixels: int, draft: int | None = None) -> Image.Image:
    try:
        with Image.open(path) as im:
            w, h = im.size
            jpeg = im.format == "JPEG"
            jpeg_limit = min(JPEG_REDUCE * max_pixels, 2 * Image.MAX_IMAGE_PIXELS)  # PIL refuses more itself
            if w * h > (jpeg_limit if jpeg else max_pixels):
                hint = "" if jpeg else f" (a JPEG is read at reduced size up to {jpeg_limit:,})"
                raise ImageError(f"{w}x{h} pixels is over the limit of {jpeg_limit if jpeg else max_pixels:,}{hint}")
            if draft and jpeg:
                im.draft("RGB", (draft, draft))  # DCT-domain downscale: decodes far fewer pixels
            elif jpeg and w * h > max_pixels:
                im.draft("RGB", (w // 2, h // 2))  # half the size: a quarter of the pixels, within the limit
            im.load()
            return to_rgb(ImageOps.exif_transpose(im))
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError("file not found") from None
    except Image.UnidentifiedImageError:  # PIL's words name the file again and not the problem
        kind = NOT_SUPPORTED.get(Path(str(path)).suffix.lower())
        if kind:
            raise ImageError(f"{kind} photos are not supported here (no decoder installed): convert it to JPEG or "
                             f"PNG first") from None
        what = "empty: 0 bytes" if _size(path) == 0 else "no known image format"
        raise ImageError(f"not an image file PIL can read ({what})") from None
    except Image.DecompressionBombError:
        raise ImageError(f"over {2 * Image.MAX_IMAGE_PIXELS:,} pixels: refused as a possible decompression "
                         f"bomb") from None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        if "truncated" in str(e).lower():  # PNG: "image file is truncated"; JPEG: "Truncated File Read"
            raise ImageError("the file is cut short (a download or copy that did not finish?)") from None
        raise ImageError(f"{type(e).__name__}: {e}") from None


def _size(source) -> int | None:
    """Bytes in a file path or file-like object, None where that cannot be told."""
    try:
        if hasattr(source, "getbuffer"):
            return source.getbuffer().nbytes
        return Path(source).stat().st_size
    except (OSError, TypeError, ValueError):
        return None


def load_image(path, max_pixels: int = 50_000_000) -> Image.Image:
    """Decode an image as RGB, upright per its EXIF orientation. Raises ImageError for anything unreadable."""
    try:
        return _open_rgb(path, max_pixels)
    except ImageError as e:
        raise ImageError(f"{path}: {e}") from None


def upright_size(path) -> tuple[int, int]:
    """(width, height) of an image file upright, as load_image turns it, read from its header: a JPEG over the pixel
    limit is decoded at reduced size, and what is found on it is scaled back to the file's pixels with this."""
    with Image.open(path) as im:
        w, h = im.size
        if im.format == "TIFF":  # PIL's TIFF reader gives the size upright already, and turns the pixels as it loads
            return w, h
        return (h, w) if im.getexif().get(0x0112, 1) in (5, 6, 7, 8) else (w, h)  # EXIF orientation: turned


def files_under(folder, unreadable: list | None = None) -> list[Path]:
    """Every file in the folder and its subfolders, sorted, leaving out hidden ones: macOS's "._x.jpg" resource forks,
    and copies in ".ipynb_checkpoints/" or ".thumbnails/" that would be the same image twice. Subfolders behind
    symbolic links are searched too (a data set linked in from another disk), each real folder once, so a link back
    up the tree does not loop. A subfolder that cannot be read goes into ``unreadable`` as "folder (why)", to be
    named, not left out without a word."""
    seen, out = set(), []
    on_error = None if unreadable is None else (lambda e: unreadable.append(f"{e.filename} ({e.strerror or e})"))
    for top, dirs, files in os.walk(folder, followlinks=True, onerror=on_error):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        out += [Path(top) / f for f in files if not f.startswith(".")]
    return sorted(out)


def frame_count(source) -> int:
    """How many frames an image file holds (an animated GIF or WebP, a multi-page TIFF): load_image reads the first
    only. 1 where the header cannot be read."""
    try:
        with Image.open(source) as im:
            return int(getattr(im, "n_frames", 1))
    except Exception:  # noqa: BLE001 -- a file load_image cannot read says so itself
        return 1
    finally:
        if hasattr(source, "seek"):
            source.seek(0)


def load_square(path, size: int, max_pixels: int = 50_000_000) -> np.ndarray:
    """uint8 RGB [size, size, 3]: the image squashed to a square as training and evaluation see it. Raises
    ImageError."""
    im = _open_rgb(path, max_pixels, draft=size)
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)  # PIL's bilinear filters over the source: antialiased
    return np.asarray(im)


def thumbnail(path, px: int, max_pixels: int = 50_000_000) -> np.ndarray:
    """uint8 RGB, upright, its longer side at most ``px``: for showing an image, not for a model. Raises ImageError
    saying what is wrong with it (shown beside its name)."""
    im = _open_rgb(path, max_pixels, draft=px)
    im.thumbnail((px, px))
    return np.asarray(im)


def _threads() -> int:
    return min(16, 2 * (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def memory_bytes() -> int | None:
    """The memory this process may use: the machine's, or less where a container or a SLURM job's cgroup limits it;
    None where that cannot be told (Windows)."""
    try:
        limits = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")]
    except (AttributeError, ValueError, OSError):
        return None
    for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):  # cgroup v2, v1
        try:
            limits.append(int(Path(f).read_text().strip()))
        except (OSError, ValueError):  # not there, or "max": no limit
            pass
    return min(limits)


def fits_in_memory(n: int, size: int, processes: int = 1) -> bool:
    """Whether ``n`` images decoded at ``size`` px take at most half of the memory this process may use (memory_bytes),
    shared by ``processes`` (the training processes of one machine under torchrun). True where that cannot be told."""
    memory = memory_bytes()
    return memory is None or n * 3 * size * size <= memory / 2 / max(processes, 1)


class LazyImages:
    """Images decoded as they are indexed instead of held in memory, for data whose decoded pixels would not fit
    (full AffectNet's 287k images take 43 GB at 224 px): ``images[i]`` is a uint8 tensor [3, size, size],
    ``images[a:b]`` a stacked batch, as from decode_images' tensor. An image that no longer decodes (changed since it
    was checked) comes out black, with a warning."""

    def __init__(self, paths, size: int):
        self.paths, self.size = [str(p) for p in paths], size

    def __len__(self) -> int:
        return len(self.paths)

    def __add__(self, other: "LazyImages") -> "LazyImages":
        return LazyImages(self.paths + other.paths, self.size)

    def _one(self, i: int) -> np.ndarray:
        try:
            return load_square(self.paths[i], self.size).transpose(2, 0, 1)
        except ImageError as e:
            warnings.warn(f"{self.paths[i]}: {e}; a black image stands in for it", stacklevel=2)
            return np.zeros((3, self.size, self.size), np.uint8)

    def __getitem__(self, i):
        import torch

        if isinstance(i, slice):
            rows = range(*i.indices(len(self)))
            with ThreadPoolExecutor(max_workers=_threads()) as pool:  # a batch: decoded in threads, as below
                return torch.from_numpy(np.stack(list(pool.map(self._one, rows))) if rows else
                                        np.zeros((0, 3, self.size, self.size), np.uint8))
        return torch.from_numpy(np.ascontiguousarray(self._one(int(i))))


def decode_images(root, samples, size: int, progress: bool = True, what: str = "", keep: bool = True):
    """Decode every sample once to a uint8 tensor [N_ok, 3, size, size]; ``what`` names them on the progress bar
    ("train": "decode train 150px"). ``keep=False`` checks that each decodes but keeps no pixels: the images come
    back as LazyImages, decoded again as they are used.

    Returns (images, indices into samples that decoded, failures as (path, reason)); never raises for a bad image.
    """
    root = Path(root)
    n = len(samples)
    buf = np.empty((n, 3, size, size) if keep else (0,), dtype=np.uint8)
    errors: dict[int, str] = {}

    def work(i: int) -> None:
        try:
            square = load_square(root / samples[i].path, size)
            if keep:
                buf[i] = square.transpose(2, 0, 1)  # own row per thread: no lock
        except ImageError as e:
            errors[i] = str(e)

    # PIL releases the GIL while decoding and resizing, so threads scale without copying pixels between processes.
    desc = f"decode {what} {size}px" if what else f"decode {size}px"
    with ThreadPoolExecutor(max_workers=_threads()) as pool, tqdm(total=n, desc=desc, unit="img",
                                                                  disable=not progress) as bar:
        for _ in pool.map(work, range(n)):
            bar.update()
    import torch  # here, not at the top: the dashboard's gallery decodes images without needing torch

    ok = [i for i in range(n) if i not in errors]
    if not keep:
        data = LazyImages([root / samples[i].path for i in ok], size)
    else:
        data = torch.from_numpy(buf) if len(ok) == n else torch.from_numpy(buf[ok])
    failures = [(samples[i].path, errors[i]) for i in sorted(errors)]
    return data, ok, failures

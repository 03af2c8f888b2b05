"""Classification data sets of your own, in four formats (benchmarks ``npz-*``,
``imagefolder-*``, ``hf-*``, ``table-*`` in ``benchmarks/generic.py``):

- ``npz``: an ``.npz`` file (read without pickle) with ``x`` (features (N, F), grey images
  (N, H, W), or images (N, C, H, W) or (N, H, W, C) with 1 or 3 channels; uint8 is scaled to
  [0, 1]), ``y`` (labels), optional ``ids`` (unique integers) and ``split`` (train / test /
  validation per row);
- ``imagefolder``: a folder with one sub-folder of images per class (class names sorted,
  numerically when all are numbers), or ``train/``, ``test/`` (and ``validation/``) folders
  each laid out so;
- ``hf``: a Hugging Face ``datasets`` directory written by ``save_to_disk`` (a ``Dataset``,
  or a ``DatasetDict`` whose split names are train / test / validation);
- ``table``: a parquet or CSV file.

An ``hf`` or ``table`` data set has a label column (``label=COLUMN``, default ``label``) and
either an image column (``image=COLUMN``, default ``image`` when there is one: encoded image
bytes, Hugging Face's ``{"bytes", "path"}`` cells, or arrays) or numeric feature columns (every
other column but ``id`` and ``split``, which mean what they mean in an npz).

Labels are integers >= 0 (classes 0..max) or names (numbered in sorted order). Images are grey
when all are, otherwise RGB, and all of one size unless ``size=H`` or ``size=HxW`` resizes
them. Without a split, a stratified 20% test split and then 10% of the rest as validation are
carved with a fixed seed.

The bundle's name is the data's identity, ``NAME@HASH`` (``HASH`` without ``name=``): a hash
of the loaded arrays (inputs, labels, ids, split), never the file's path, so a moved file keeps
its recorded results and a changed one is a data set of its own.

Input range: the loaders give images in [0, 1] (uint8 arrays and image files are divided by
255) and the neutral defaults (SGD, learning rate 0.05) assume inputs of order one, so the
rule (``input_range_message``) is on the inputs' root mean square (RMS, over every value): above
``OFF_SCALE`` (10) the inputs are far off that scale (raw 0-255 pixels have an RMS near 100,
pixels in [0, 1] below 1, standardised features 1) and the loader warns (``InputRangeWarning``,
one line with their min, max and mean and what to do). Compared with the inputs a model was
trained on (the deletion workflow's holdout against its data), the two RMS may differ by at most
that factor either way."""
from __future__ import annotations

import hashlib
import io
import re
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..registry import datasets
from . import DataBundle, make_split

SPLITS = ("train", "validation", "test")
TEST_FRACTION, VALIDATION_FRACTION, SPLIT_SEED = 0.2, 0.1, 0
NAME = re.compile(r"[A-Za-z0-9_.-]{1,40}")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def located(path: str | None, kind: str, example: str) -> Path:
    if not path:
        raise UserError(f"a {kind} benchmark reads your data: give its path, e.g. "
                        f"{kind}-random10[path={example}]")
    found = Path(path).expanduser()
    if not found.exists():
        raise UserError(f"{found} does not exist: give the {kind} data's path as path=")
    return found


def image_layout(x: np.ndarray, source) -> np.ndarray:
    """Inputs as float32, images as (N, C, H, W) with C 1 or 3; features stay (N, F)."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif x.ndim != 2 and not (x.ndim == 4 and x.shape[1] in (1, 3)):
        raise UserError(f"{source}: x has shape {x.shape}; store features (N, F), grey images "
                        "(N, H, W) or images (N, C, H, W) / (N, H, W, C) with 1 or 3 channels")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise UserError(f"{source}: x holds {x.dtype} values; store numbers")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise UserError(f"{source}: x holds NaN or infinite values; replace them")
    return x


# How far (a factor) inputs' root mean square may lie from the expected one (see the docstring).
OFF_SCALE = 10.0
ORDER_ONE = ("inputs of order one (the loaders' images are in [0, 1], the defaults assume "
             "[0, 1] or standardised features)")


class InputRangeWarning(UserWarning):
    """Inputs far outside the range a model is (or was) trained on."""


def input_range(x) -> dict[str, float]:
    """min, max, mean and root mean square of every value of ``x`` (sums in float64, a
    million values at a time, so a large data set is not copied whole)."""
    values = np.ravel(np.asarray(x))
    if values.size == 0:
        return {"min": 0.0, "max": 0.0, "mean": 0.0, "rms": 0.0}
    total = squares = 0.0
    for start in range(0, values.size, 1 << 20):
        chunk = values[start:start + (1 << 20)].astype(np.float64)
        total += float(chunk.sum())
        squares += float(np.dot(chunk, chunk))
    return {"min": float(values.min()), "max": float(values.max()),
            "mean": total / values.size, "rms": float(np.sqrt(squares / values.size))}


def describe_range(observed: dict) -> str:
    return (f"from {observed['min']:.4g} to {observed['max']:.4g} (mean {observed['mean']:.4g}, "
            f"root mean square {observed['rms']:.4g})")


def input_range_message(what: str, observed: dict, reference: dict | None = None,
                        reference_what: str = "") -> str | None:
    """One line when ``observed`` (``input_range``) is off scale, else None: against
    ``reference`` (the inputs the model was trained on, named ``reference_what``) when given,
    their RMS more than ``OFF_SCALE`` times apart either way; otherwise against inputs of order
    one, an RMS above ``OFF_SCALE``."""
    bytes_like = observed["min"] >= 0 and 1 < observed["max"] <= 255
    if reference is None:
        if observed["rms"] <= OFF_SCALE:
            return None
        expected = ORDER_ONE
        fix = ("divide by 255 (8-bit pixels; or store x as uint8, which is scaled to [0, 1])"
               if bytes_like else "standardise each feature (subtract its mean, divide by its "
               "standard deviation)")
    else:
        if reference["rms"] == 0 or (
                1 / OFF_SCALE <= observed["rms"] / reference["rms"] <= OFF_SCALE):
            return None
        expected = f"{reference_what} runs {describe_range(reference)}"
        fix = ("divide by 255" if bytes_like and reference["max"] <= 1 else
               f"scale it as {reference_what} is scaled")
    return (f"inputs off scale: {what} runs {describe_range(observed)}, far from {expected}: "
            f"{fix}")


def resized(x: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or x.shape[-2:] == size:
        return x
    # antialiased bilinear: a plain bilinear downscale skips pixels
    return F.interpolate(torch.from_numpy(np.ascontiguousarray(x)), size=size, mode="bilinear",
                         antialias=True, align_corners=False).numpy()


def parse_size(size: str | None, source) -> tuple[int, int] | None:
    if size is None:
        return None
    match = re.fullmatch(r"(\d+)(?:x(\d+))?", str(size))
    if not match or int(match[1]) < 1 or int(match[2] or 1) < 1:
        raise UserError(f"{source}: size={size!r}: write size=H or size=HxW in pixels")
    return int(match[1]), int(match[2] or match[1])


def labels_of(y, source) -> np.ndarray:
    """Integer labels >= 0 as they are (integral floats too); names numbered in sorted order."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise UserError(f"{source}: labels have shape {y.shape}; store one label per example")
    if y.dtype.kind in "US" or (y.dtype == object and all(isinstance(v, str) for v in y)):
        number = {name: i for i, name in enumerate(sorted(set(y.tolist()), key=class_order))}
        return np.array([number[v] for v in y.tolist()], dtype=np.int64)
    if y.dtype.kind in "iu" or (y.dtype.kind == "f" and np.isfinite(y).all()
                                and (y == np.round(y)).all()):
        if len(y) and y.min() < 0:
            raise UserError(f"{source}: label {y.min()} is negative; number classes from 0")
        return y.astype(np.int64)
    raise UserError(f"{source}: labels must be integers (classes 0..K-1) or class names; "
                    f"got {y.dtype} values such as {y[:3].tolist()}")


def class_order(name: str):
    """Class names sort numerically when all are numbers ("2" before "10")."""
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def decode_images(cells, source, size: tuple[int, int] | None) -> np.ndarray:
    """Images (file paths, encoded bytes, ``{"bytes", "path"}`` cells or arrays) as one
    (N, C, H, W) float32 array: grey if every image is, otherwise RGB."""
    from PIL import Image

    pictures = []
    for i, cell in enumerate(cells):
        where = cell if isinstance(cell, Path) else f"row {i}"
        if isinstance(cell, dict):
            cell = io.BytesIO(cell["bytes"]) if cell.get("bytes") else cell.get("path")
        elif isinstance(cell, (bytes, bytearray)):
            cell = io.BytesIO(cell)
        try:
            if isinstance(cell, (io.BytesIO, Path, str)):
                with Image.open(cell) as image:
                    image.load()
                    pictures.append(image.copy())
            else:
                # an array cell read from parquet is an object array of rows
                rows = cell.tolist() if hasattr(cell, "tolist") else cell
                pictures.append(image_layout(np.asarray(rows)[None], source)[0])
        except (OSError, ValueError, TypeError) as exc:
            raise UserError(f"{source}: cannot read image {where} ({type(exc).__name__}: {exc}); "
                            "replace or remove it") from None
    if not pictures:
        raise UserError(f"{source}: no images")
    grey = all(p.shape[0] == 1 if isinstance(p, np.ndarray) else p.mode in GREY_MODES
               for p in pictures)
    arrays = []
    for picture in pictures:
        if not isinstance(picture, np.ndarray):
            picture = np.asarray(picture.convert("L" if grey else "RGB"), dtype=np.float32) / 255.0
            picture = picture[None] if grey else picture.transpose(2, 0, 1)
        elif not grey and picture.shape[0] == 1:
            picture = np.repeat(picture, 3, axis=0)
        arrays.append(resized(picture[None], size)[0])
    shapes = sorted({a.shape[1:] for a in arrays})
    if len(shapes) > 1:
        raise UserError(f"{source}: images come in several sizes ({shapes[0][0]}x{shapes[0][1]}, "
                        f"{shapes[-1][0]}x{shapes[-1][1]}...); add size=HxW to resize them all")
    return np.stack(arrays)


def assemble(source, x, y, ids=None, split=None, name: str | None = None) -> DataBundle:
    """Check the arrays, split them and name the bundle ``NAME@HASH`` (see the module doc)."""
    if name is not None and not NAME.fullmatch(name):
        raise UserError(f"name={name!r}: use up to 40 letters, digits, '.', '_' or '-'")
    y = labels_of(y, source)
    if len(x) != len(y) or not len(y):
        raise UserError(f"{source}: {len(x)} inputs and {len(y)} labels; give one label per "
                        "input (and at least one of each)")
    if ids is None:
        ids = np.arange(len(y), dtype=np.int64)
    else:
        ids = np.asarray(ids)
        if ids.shape != y.shape or ids.dtype.kind not in "iu" or len(np.unique(ids)) != len(ids):
            raise UserError(f"{source}: ids must be unique integers, one per example; fix them "
                            "or drop them (examples are then numbered by row)")
        ids = ids.astype(np.int64)
    split = None if split is None else split_names(source, split, len(y))
    digest = hashlib.sha256()
    for array in (np.asarray(x.shape), x, y, ids):
        digest.update(np.ascontiguousarray(array).tobytes())
    if split is not None:
        digest.update("\n".join(split.tolist()).encode())
    positions = split_positions(y, split)
    label = digest.hexdigest()[:12]
    message = input_range_message(f"{source}'s x", input_range(x))
    if message:
        warnings.warn(f"{message}; or ignore this if the neutral defaults should train on these "
                      "values", InputRangeWarning, stacklevel=2)
    return DataBundle(f"{name}@{label}" if name else label,
                      *(make_split(part, x[positions[part]], y[positions[part]],
                                   ids[positions[part]]) for part in SPLITS),
                      num_classes=int(y.max()) + 1)


def split_names(source, split, n: int) -> np.ndarray:
    """The split column as text: train, test or validation for each of the n examples."""
    split = np.asarray([s.decode() if isinstance(s, bytes) else str(s) for s in split])
    unknown = sorted(set(split.tolist()) - set(SPLITS))
    if len(split) != n or unknown:
        raise UserError(f"{source}: split must name train, test or validation for each "
                        f"example (found {unknown[:3] or len(split)})")
    if not (split == "train").any() or not (split == "test").any():
        raise UserError(f"{source}: split has no train or no test examples; mark some, or "
                        "drop split to carve a test split")
    return split


def split_positions(y: np.ndarray, split: np.ndarray | None) -> dict[str, np.ndarray]:
    """Row positions of train, validation and test: from ``split`` where given (a missing
    validation part is carved from train), else carved, stratified with a fixed seed."""
    rng = np.random.default_rng(SPLIT_SEED)
    if split is None:
        test = stratified(y, np.arange(len(y)), TEST_FRACTION, rng)
        train = np.setdiff1d(np.arange(len(y)), test)
    else:
        train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
        if (split == "validation").any():
            return {"train": train, "validation": np.flatnonzero(split == "validation"),
                    "test": test}
    validation = stratified(y, train, VALIDATION_FRACTION, rng)
    return {"train": np.setdiff1d(train, validation), "validation": validation, "test": test}


def stratified(y: np.ndarray, rows: np.ndarray, fraction: float, rng) -> np.ndarray:
    """``fraction`` of ``rows`` of each class (rounded; a class of one keeps its example)."""
    chosen = []
    for label in np.unique(y[rows]):
        members = rows[y[rows] == label]
        chosen += rng.choice(members, size=int(round(fraction * len(members))),
                             replace=False).tolist()
    return np.sort(np.asarray(chosen, dtype=np.int64))


@datasets.register("npz", content_named=True)
def load_npz(path: str | None = None, name: str | None = None,
             size: str | None = None) -> DataBundle:
    """Your .npz file (path=FILE): x, y, optional ids and split (see data/generic.py)."""
    file = located(path, "npz", "animals.npz")
    try:
        with np.load(file, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {file} as an .npz of plain arrays ({exc}); save it with "
                        "numpy.savez(FILE, x=..., y=...)") from None
    missing = [key for key in ("x", "y") if key not in arrays]
    if missing:
        raise UserError(f"{file} has no {' or '.join(missing)} array (it has "
                        f"{', '.join(arrays) or 'none'}); save inputs as x and labels as y")
    x = image_layout(arrays["x"], file)
    if x.ndim == 4:
        x = resized(x, parse_size(size, file))
    return assemble(file, x, arrays["y"], arrays.get("ids"), arrays.get("split"), name)


@datasets.register("imagefolder", content_named=True)
def load_imagefolder(path: str | None = None, name: str | None = None,
                     size: str | None = None) -> DataBundle:
    """Your images in class sub-folders (path=DIR; or DIR/train, DIR/test[, DIR/validation])."""
    from PIL import Image

    root = located(path, "imagefolder", "photos/")
    if not root.is_dir():
        raise UserError(f"{root} is not a folder: give a folder of class sub-folders as path=")
    parts = {part: root / part for part in SPLITS if (root / part).is_dir()}
    if set(parts) != {"train", "test"} and set(parts) != set(SPLITS):
        parts = {"train": root}
    extensions = set(Image.registered_extensions())
    files, labels, split = [], [], []
    for part, folder in parts.items():
        classes = sorted((d.name for d in folder.iterdir()
                          if d.is_dir() and not d.name.startswith(".")), key=class_order)
        if not classes:
            raise UserError(f"{folder} has no class sub-folders; put each class's images in "
                            "a sub-folder named after the class")
        for label in classes:
            images = sorted(f for f in (folder / label).iterdir()
                            if f.is_file() and f.suffix.lower() in extensions)
            if not images:
                raise UserError(f"class folder {folder / label} holds no images; add some or "
                                "remove the folder")
            files += images
            labels += [label] * len(images)
            split += [part] * len(images)
    x = decode_images(files, root, parse_size(size, root))
    return assemble(root, x, np.array(labels), None, split if len(parts) > 1 else None, name)


@datasets.register("hf", content_named=True)
def load_hf(path: str | None = None, name: str | None = None, size: str | None = None,
            label: str = "label", image: str | None = None) -> DataBundle:
    """Your Hugging Face save_to_disk directory (path=DIR): image or feature and label columns."""
    import datasets as hf
    import pandas as pd

    root = located(path, "hf", "animals-hf/")
    try:
        data = hf.load_from_disk(str(root))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise UserError(f"cannot read {root} as a Hugging Face datasets directory ({exc}); "
                        "write it with Dataset.save_to_disk") from None
    if isinstance(data, hf.DatasetDict):
        unknown = sorted(set(data) - set(SPLITS))
        if unknown or "train" not in data or "test" not in data:
            raise UserError(f"{root}: splits {', '.join(data)}; a DatasetDict needs train and "
                            "test (and may have validation), nothing else")
        frames = [data[part].to_pandas().assign(split=part) for part in data]
        frame = pd.concat(frames, ignore_index=True)
    else:
        frame = data.to_pandas()
    return from_frame(frame, root, name, size, label, image)


@datasets.register("table", content_named=True)
def load_table(path: str | None = None, name: str | None = None, size: str | None = None,
               label: str = "label", image: str | None = None) -> DataBundle:
    """Your parquet or CSV file (path=FILE): image or feature columns and a label column."""
    import pandas as pd

    file = located(path, "table", "animals.parquet")
    readers = {".parquet": pd.read_parquet, ".csv": pd.read_csv}
    if file.suffix.lower() not in readers:
        raise UserError(f"{file}: a table is a .parquet or .csv file; rename or convert it")
    try:
        frame = readers[file.suffix.lower()](file)
    except Exception as exc:  # pyarrow and pandas raise many types for a damaged file
        raise UserError(f"cannot read {file} ({type(exc).__name__}: {exc}); check the "
                        "file") from None
    return from_frame(frame, file, name, size, label, image)


def from_frame(frame, source, name, size, label: str, image: str | None) -> DataBundle:
    """A table's rows: the label column, the image column or else numeric feature columns,
    and the optional ``id`` and ``split`` columns."""
    columns = [str(c) for c in frame.columns]
    if label not in columns:
        raise UserError(f"{source} has no label column {label!r} (columns: "
                        f"{', '.join(columns[:10])}); name it with label=COLUMN")
    if image is None and "image" in columns:
        image = "image"
    if image is not None and image not in columns:
        raise UserError(f"{source} has no image column {image!r}; name it with image=COLUMN")
    if image is not None:
        x = decode_images(frame[image].tolist(), source, parse_size(size, source))
    else:
        features = [c for c in columns if c not in (label, "id", "split")]
        text = [c for c in features if frame[c].dtype.kind not in "iufb"]
        if not features or text:
            raise UserError(f"{source}: feature columns must be numbers ({', '.join(text[:3])} "
                            "are not); give images in an image column (image=COLUMN) or drop "
                            "those columns")
        x = image_layout(frame[features].to_numpy(), source)
    ids = frame["id"].to_numpy() if "id" in columns else None
    split = frame["split"].tolist() if "split" in columns else None
    return assemble(source, x, frame[label].to_numpy(), ids, split, name)

"""Reading parcellations and structural connectomes, with errors that name the file and the problem.

* label volumes: NIfTI (nibabel); region volume = voxel count x |det(affine[:3, :3])| (mm^3)
* label tables: CSV/TSV (a name column and an integer column) or FreeSurfer-style LUT
* connectomes: TVB connectivity zip (weights.txt, tract_lengths.txt, centres.txt; .bz2 allowed),
  CSV (square matrix, names in the header), .npy (with a names file), MATLAB .mat (keys given
  or found), each as weights (+ tract lengths in mm)
"""

from __future__ import annotations

import bz2
import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dtb.errors import DtbError


@dataclass(frozen=True)
class Parcellation:
    """A label volume: integer labels per voxel, the voxel-to-mm affine, and label -> name."""

    labels: np.ndarray            # 3D int array
    affine: np.ndarray            # 4x4
    names: dict[int, str]         # label value -> region name
    source: str = "<memory>"

    @property
    def voxel_volume(self) -> float:
        """mm^3 per voxel."""
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    def volumes(self) -> dict[str, float]:
        """Region name -> volume in mm^3 (voxel count x voxel volume)."""
        counts = np.bincount(self.labels[self.labels > 0].ravel())
        return {name: float(counts[v] if v < len(counts) else 0) * self.voxel_volume
                for v, name in self.names.items()}


@dataclass(frozen=True)
class Connectome:
    """Region names, weights[target, source] (normalised by the reader's caller) and tract lengths (mm)."""

    names: tuple[str, ...]
    weights: np.ndarray
    lengths: np.ndarray
    source: str = "<memory>"
    sizes: np.ndarray | None = None    # region sizes (voxel counts) when no volume exists


def read_label_table(path: str | Path) -> dict[str, int]:
    """Region name -> label value, from a CSV/TSV with a name column (``name``, ``region`` or
    ``label``) and an integer column (``index``, ``id``, ``value`` or ``label``), optionally a
    ``hemisphere`` column (names become ``<h>_<name>`` with h = l or r, as in TVB), or a
    FreeSurfer-style LUT (``value name r g b a`` lines)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise DtbError(f"{path}: cannot read label table: {e.strerror or e}") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise DtbError(f"{path}: the label table is empty")
    delim = "\t" if "\t" in lines[0] else ("," if "," in lines[0] else None)
    out: dict[str, int] = {}
    if delim is None:   # FreeSurfer LUT: "value name ..."
        for n, ln in enumerate(lines, 1):
            parts = ln.split()
            try:
                out[parts[1]] = int(parts[0])
            except (IndexError, ValueError):
                raise DtbError(f"{path}: line {n}: expected 'value name ...', got {ln!r}") from None
        return out
    rows = list(csv.DictReader(lines, delimiter=delim))
    cols = {c.lower().strip(): c for c in (rows[0] if rows else {})}
    name_col = next((cols[c] for c in ("name", "region", "label") if c in cols), None)
    id_col = next((cols[c] for c in ("index", "id", "value", "label") if c in cols and cols[c] != name_col), None)
    if name_col is None or id_col is None:
        raise DtbError(f"{path}: expected a name column (name/region/label) and an integer column "
                       f"(index/id/value), found {', '.join(rows[0]) if rows else 'no columns'}")
    hemi_col = cols.get("hemisphere")
    for n, row in enumerate(rows, 2):
        try:
            value = int(row[id_col])
        except (TypeError, ValueError):
            raise DtbError(f"{path}: line {n}: column {id_col!r} must be an integer, got {row[id_col]!r}") from None
        name = row[name_col].strip()
        if hemi_col and row.get(hemi_col):
            name = f"{row[hemi_col].strip().lower()[0]}_{name}"
        if name in out:
            raise DtbError(f"{path}: line {n}: region name {name!r} appears twice")
        out[name] = value
    return out


def label_array(img, source: str) -> np.ndarray:
    """The integer 3D label array of a NIfTI image, or a DtbError naming ``source``."""
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DtbError(f"{source}: a label volume must be 3D, got shape {data.shape}")
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or not np.all(np.equal(np.mod(data, 1), 0)):
            raise DtbError(f"{source}: label values must be integers (got {data.dtype} with fractional values)")
    return data.astype(np.int64)


def read_parcellation(volume: str | Path, table: str | Path, keep: set[str] | None = None) -> Parcellation:
    """A label volume (NIfTI) and its label table. With ``keep``, only those regions are kept and
    every other label counts as background."""
    import nibabel as nib
    volume = Path(volume)
    try:
        img = nib.load(volume)
    except FileNotFoundError:
        raise DtbError(f"{volume}: file not found") from None
    except Exception as e:     # nibabel raises several types for files it cannot read
        raise DtbError(f"{volume}: cannot read as NIfTI: {e}") from None
    data = label_array(img, str(volume))
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise DtbError(f"{volume}: the affine is not invertible: {np.array2string(affine, separator=',').replace(chr(10), '')}")
    table_map = read_label_table(table)
    if keep is not None:
        missing = sorted(set(keep) - set(table_map))
        if missing:
            raise DtbError(f"{table}: no label for region(s) {', '.join(missing[:20])}")
        dropped = [v for k, v in table_map.items() if k not in keep]
        data = np.where(np.isin(data, dropped), 0, data)
        table_map = {k: v for k, v in table_map.items() if k in keep}
    names_by_label = {v: k for k, v in table_map.items()}
    present = set(np.unique(data).tolist()) - {0}
    unnamed = sorted(present - set(names_by_label))
    if unnamed:
        raise DtbError(f"{volume}: label value(s) {unnamed[:10]} have no name in {table}")
    names = {v: n for v, n in names_by_label.items() if v in present}
    return Parcellation(labels=data.astype(np.int64), affine=affine, names=names, source=str(volume))


def _read_text_matrix(raw: bytes, what: str) -> np.ndarray:
    try:
        return np.loadtxt(io.StringIO(raw.decode()), ndmin=2)
    except ValueError as e:
        raise DtbError(f"{what}: not a numeric matrix ({e})") from None


def read_connectome(path: str | Path, names: str | Path | None = None, lengths: str | Path | None = None,
                    weights_key: str | None = None, lengths_key: str | None = None) -> Connectome:
    """Weights and tract lengths (mm) with region names, from a TVB zip, CSV, .npy or .mat file.

    ``names``: a text file with one region name per line (for .npy and .mat);
    ``lengths``: a separate lengths file of the same format (CSV/.npy) when not in ``path``."""
    path = Path(path)
    if not path.exists():
        raise DtbError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".zip":
        return _check(_read_tvb_zip(path), str(path))
    if suffix == ".mat":
        from scipy.io import loadmat
        try:
            m = {k: v for k, v in loadmat(path).items() if not k.startswith("__")}
        except Exception as e:
            raise DtbError(f"{path}: cannot read as MATLAB .mat: {e}") from None
        w = _pick(m, weights_key, ("weights", "sc", "w", "cm", "connectivity"), path)
        ln = None
        if lengths is not None:
            ln = _pick({k: v for k, v in loadmat(lengths).items() if not k.startswith("__")}, lengths_key,
                       ("lengths", "len", "tract_lengths", "dist", "distance"), Path(lengths))
        elif lengths_key or any(k.lower() in ("lengths", "tract_lengths", "len") for k in m):
            ln = _pick(m, lengths_key, ("lengths", "tract_lengths", "len"), path)
        nm = _read_names(names, len(w), path)
        return _check(Connectome(nm, np.asarray(w, float), np.asarray(ln if ln is not None else np.zeros_like(w), float),
                                 str(path)), str(path))
    if suffix == ".npy":
        w = np.load(path)
        ln = np.load(lengths) if lengths is not None else np.zeros_like(w)
        return _check(Connectome(_read_names(names, len(w), path), np.asarray(w, float), np.asarray(ln, float),
                                 str(path)), str(path))
    if suffix in (".csv", ".tsv", ".txt"):
        w, nm = _read_csv_matrix(path)
        ln = _read_csv_matrix(Path(lengths))[0] if lengths is not None else np.zeros_like(w)
        if names is not None:
            nm = _read_names(names, len(w), path)
        if nm is None:
            raise DtbError(f"{path}: no region names: give them in the header row or with a names file")
        return _check(Connectome(nm, w, ln, str(path)), str(path))
    raise DtbError(f"{path}: unknown connectome format {suffix!r} (expected .zip from TVB, .csv, .npy or .mat)")


def _pick(m: dict, key: str | None, candidates: tuple[str, ...], path: Path) -> np.ndarray:
    if key is not None:
        if key not in m:
            raise DtbError(f"{path}: no variable {key!r}; it holds {', '.join(m)}")
        return m[key]
    for k in m:
        if k.lower() in candidates:
            return m[k]
    if len(m) == 1:
        return next(iter(m.values()))
    raise DtbError(f"{path}: cannot tell which variable holds the matrix; it holds {', '.join(m)} "
                   f"(give the key)")


def _read_names(names, n: int, path: Path) -> tuple[str, ...]:
    if names is None:
        return tuple(f"region_{i}" for i in range(n))
    try:
        out = tuple(ln.strip() for ln in Path(names).read_text().splitlines() if ln.strip())
    except OSError as e:
        raise DtbError(f"{names}: cannot read region names: {e.strerror or e}") from None
    if len(out) != n:
        raise DtbError(f"{names}: {len(out)} region names for a {n} x {n} connectome ({path})")
    return out


def _read_csv_matrix(path: Path) -> tuple[np.ndarray, tuple[str, ...] | None]:
    text = path.read_text()
    delim = "\t" if "\t" in text.splitlines()[0] else ","
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=delim) if r]
    header = None
    try:
        float(rows[0][-1])
    except ValueError:
        header = tuple(x.strip() for x in rows[0] if x.strip())
        rows = rows[1:]
    try:
        # a first column of names is allowed too
        if rows and not _is_number(rows[0][0]):
            rows = [r[1:] for r in rows]
        m = np.array([[float(x) for x in r] for r in rows])
    except ValueError as e:
        raise DtbError(f"{path}: not a numeric matrix ({e})") from None
    return m, header


def _is_number(x: str) -> bool:
    try:
        float(x)
        return True
    except ValueError:
        return False


def _read_tvb_zip(path: Path) -> Connectome:
    """TVB connectivity zip: weights.txt, tract_lengths.txt, centres.txt (name x y z), maybe .bz2."""
    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise DtbError(f"{path}: not a zip file") from None
    members = {Path(n).name: n for n in z.namelist()}

    def member(stem: str) -> bytes:
        for name in (stem, stem + ".bz2"):
            if name in members:
                raw = z.read(members[name])
                return bz2.decompress(raw) if name.endswith(".bz2") else raw
        raise DtbError(f"{path}: no {stem} in the archive (holds {', '.join(members)})")

    w = _read_text_matrix(member("weights.txt"), f"{path}:weights.txt")
    ln = _read_text_matrix(member("tract_lengths.txt"), f"{path}:tract_lengths.txt")
    names = tuple(ln_.split()[0] for ln_ in member("centres.txt").decode().splitlines() if ln_.strip())
    return Connectome(names, w, ln, str(path))


def _check(c: Connectome, source: str) -> Connectome:
    w, ln = np.asarray(c.weights, float), np.asarray(c.lengths, float)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise DtbError(f"{source}: the weights must be a square matrix, got shape {w.shape}")
    if ln.shape != w.shape:
        raise DtbError(f"{source}: tract lengths have shape {ln.shape}, the weights {w.shape}")
    if len(c.names) != len(w):
        raise DtbError(f"{source}: {len(c.names)} region names for a {len(w)} x {len(w)} connectome")
    for what, m in (("weights", w), ("tract lengths", ln)):
        if not np.all(np.isfinite(m)):
            bad = np.argwhere(~np.isfinite(m))[0]
            raise DtbError(f"{source}: {what} hold NaN or infinite values (first at row {bad[0]}, column {bad[1]})")
        if np.any(m < 0):
            bad = np.argwhere(m < 0)[0]
            raise DtbError(f"{source}: {what} must not be negative (first at row {bad[0]}, column {bad[1]}: "
                           f"{m[bad[0], bad[1]]:g})")
    if len(set(c.names)) != len(c.names):
        raise DtbError(f"{source}: region names repeat")
    return Connectome(tuple(c.names), w, ln, source, c.sizes)


def match_regions(parcellation_names: list[str], connectome_names: tuple[str, ...], volume_source: str,
                  connectome_source: str) -> None:
    """Both must name the same regions; otherwise list what does not match, on both sides."""
    a, b = set(parcellation_names), set(connectome_names)
    if a != b:
        only_vol = sorted(a - b)
        only_con = sorted(b - a)
        sides = [f"only in the volume ({len(only_vol)}): {', '.join(only_vol[:20])}" if only_vol else "",
                 f"only in the connectome ({len(only_con)}): {', '.join(only_con[:20])}" if only_con else ""]
        raise DtbError(f"region names do not match between {volume_source} and {connectome_source}: "
                       + "; ".join(x for x in sides if x))


def template_space(atlas) -> str | None:
    """The template space of a label volume: MNI152 for the bundled atlas, else the BIDS space-
    or TemplateFlow tpl- entity of its file name, or MNI152 when its name says mni; None when
    nothing says."""
    import re
    from atlas import builtin
    path = Path(atlas)
    if path.exists() and path.resolve() == Path(builtin.DK_VOLUME).resolve():
        return "MNI152"
    m = re.search(r"(?:^|_)(?:space|tpl)-([A-Za-z0-9]+)", path.name)
    if m:
        return m.group(1)
    return "MNI152" if "mni" in path.name.lower() else None

"""Files people hand us and files we hand back: input JSON, result JSON and the campaign's CSV.

Reading: an input file is read, its QCSchema version detected and its digest taken once
(:class:`InputFile`); a molecule file (XYZ, ...) becomes a ManyBodyInput by the recipe the command line
gives (:func:`open_input`), written beside its result as ``NAME.input.json`` so that ``run`` of that
file repeats the run exactly; a result file is read back as upstream's ManyBodyResult
(:func:`load_result`).

Writing never costs work and never follows a link. Output places are checked before anything is
computed (:func:`check_result_path`, :func:`check_output_dir`). Every file is written under a fresh
random name in its directory, opened with ``O_EXCL | O_NOFOLLOW``, and renamed over the final name:
a killed writer leaves no half file that looks done, and a symlink planted in the directory (named
like a temporary file, or like the result itself) is neither followed nor written through. When a
result cannot be written after computing (quota, file-size limit), :func:`save_result` says where its
fragments are (the cache) or, without a cache, writes it to a fallback file and names that.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import secrets
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import InputError, OutputError
from ..schema import (
    SchemaVersion,
    detect_input_version,
    dump_json,
    keep_fragment_results,
    manybody_result_model,
    result_version,
)

if TYPE_CHECKING:
    from ..computer import ManyBodyComputer, ManyBodyComputerV2
    from ..planning.molecule_files import ExpansionRecipe
    from ..screening import Screening

logger = logging.getLogger(__name__)

#: Suffix of a result file: ``dimer.json`` gives ``dimer.result.json``.
RESULT_SUFFIX = ".result.json"
#: Suffix of the ManyBodyInput built from a molecule file: ``cluster.xyz`` gives ``cluster.input.json``.
INPUT_SUFFIX = ".input.json"
#: Name of a campaign's summary table, written in its output directory.
SUMMARY_NAME = "campaign_summary.csv"
#: BSSE treatments whose interaction energy (through the highest n-body level) the summary lists.
BSSE_TYPES = ("cp", "nocp", "vmfc")
#: Columns of the campaign's summary CSV, in order.
SUMMARY_COLUMNS = (
    "input",
    "status",
    "n_tasks",
    "n_cached",
    "n_executed",
    "n_shared",
    "n_failed",
    "return_energy",
    *(f"{bsse}_interaction_energy" for bsse in BSSE_TYPES),
    "max_nbody",
    "wall_time",
    "fragment_time",
    "result_file",
    "error",
)


# -- inputs ---------------------------------------------------------------------------------------


@dataclass
class InputFile:
    """A ManyBodyInput read from disk: its JSON, schema version, id in a campaign and digest.

    One built from a molecule file has that file as ``source`` and, as ``path``, where it is written
    (:func:`write_built_input`).
    """

    path: Path
    data: dict[str, Any]
    schema_version: SchemaVersion
    input_id: str
    digest: str
    source: Path | None = None

    @property
    def shown(self) -> Path:
        """The file the user named: the molecule file an input was built from, else the input."""
        return self.source or self.path

    @property
    def computer_class(self) -> type[ManyBodyComputer] | type[ManyBodyComputerV2]:
        """``qcmb_parsl.ManyBodyComputer`` or ``qcmb_parsl.v2.ManyBodyComputer``, by schema version."""
        from ..computer import computer_class

        return computer_class(self.schema_version)

    def prepare(self, screening: Screening | None = None) -> Any:
        """The validated computer of this input (screened by ``screening``, a
        :class:`~qcmb_parsl.screening.Screening`); InputError naming the file the user named (the molecule
        file of a built input, which is written only once it is valid) when it is invalid."""
        try:
            return self.computer_class.prepare(self.data, screening)
        except InputError as exc:
            raise InputError(f"{self.shown}: {exc}") from None


def read_input(
    path: str | os.PathLike, *, keep_results: bool = True, input_id: str | None = None
) -> InputFile:
    """Read a ManyBodyInput JSON file; InputError naming the file when it is missing or not JSON.

    ``keep_results`` sets the fragment-results protocol when the input leaves it out (see
    :func:`qcmb_parsl.schema.keep_fragment_results`). The input is validated by
    :meth:`InputFile.prepare`, not here.
    """
    path = Path(path)
    return _input_file(path, read_json_object(path, "ManyBodyInput"), keep_results, input_id)


def read_json_object(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """The JSON object in an input file; InputError naming the file when it is missing, unreadable,
    not JSON, or JSON of another shape than ``what`` (a ManyBodyInput, an OptimizationInput)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file {str(path)!r} {'is not a file' if path.exists() else 'does not exist'}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read input file {str(path)!r}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"input file {str(path)!r} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InputError(f"input file {str(path)!r} is nested too deeply to read: no {what} is") from None
    if not isinstance(data, dict):
        article = "an" if what[0] in "AEIOU" else "a"
        raise InputError(
            f"input file {str(path)!r} holds a JSON {type(data).__name__}, not {article} {what} object"
        )
    return data


def _input_file(
    path: Path, data: dict[str, Any], keep_results: bool, input_id: str | None, source: Path | None = None
) -> InputFile:
    version = detect_input_version(data)
    if keep_results:
        data = keep_fragment_results(data, version)
    return InputFile(path, data, version, input_id or input_stem(path), input_digest(data), source)


def open_input(
    path: str | os.PathLike, recipe: ExpansionRecipe | None, result_path: str | os.PathLike
) -> InputFile:
    """The input ``path`` names: a ManyBodyInput JSON file, or a molecule file and ``recipe``.

    A molecule file's input is built here, not written: its ``path`` is ``NAME.input.json`` beside
    ``result_path``, where :func:`write_built_input` puts it once it is valid (the caller has checked
    that directory, as for the result).
    """
    from ..planning.molecule_files import (
        MOLECULE_SUFFIXES,
        is_molecule_file,
        manybody_input_from_molecule_file,
    )

    path = Path(path)
    if not is_molecule_file(path):
        if recipe is not None:
            raise InputError(
                f"{path} is a ManyBodyInput, which brings its own model and fragments: --method, --basis, "
                f"--fragments and the like are for molecule files ({', '.join(MOLECULE_SUFFIXES)})"
            )
        return read_input(path)
    if recipe is None:
        raise InputError(f"{path} is a molecule file: say what to compute with --method (and --basis)")
    written = _check_file_place(built_input_path(result_path))
    if same_file(written, Path(result_path)):
        raise OutputError(
            f"result file {result_path}: the input built from {path} would be written there too: name "
            f"another result file, e.g. {default_result_path(path)}"
        )
    check_outputs_spare_inputs([written], [path], f"input built from {path}")
    data = manybody_input_from_molecule_file(path, recipe)
    return _input_file(written, data, True, input_stem(path), source=path)


def built_input_path(result_path: str | os.PathLike) -> Path:
    """``NAME.input.json`` beside ``NAME.result.json``: where an input built from a molecule file goes."""
    result_path = Path(result_path)
    return result_path.with_name(result_stem(result_path) + INPUT_SUFFIX)


def write_built_input(input_file: InputFile) -> Path | None:
    """Write an input built from a molecule file (atomically, as results are); None for one read from disk.

    What is written is what runs, fragment-results protocol included: ``run`` of it gives the same
    digest, so a campaign counts its result as done.
    """
    if input_file.source is None:
        return None
    text = json.dumps(input_file.data, indent=1) + "\n"
    return _write_atomic(input_file.path, lambda handle: handle.write(text))


def input_digest(data: dict[str, Any]) -> str:
    """SHA-256 of the input's canonical JSON: a result file records it, so a changed input reruns."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def input_stem(path: str | os.PathLike) -> str:
    """``water_dimer`` for ``water_dimer.json`` (and ``water_dimer``); ``cluster`` for ``cluster.xyz``
    and the ``cluster.input.json`` built from it."""
    from ..planning.molecule_files import MOLECULE_SUFFIXES

    name = Path(path).name
    for suffix in (INPUT_SUFFIX, ".json", *MOLECULE_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def result_stem(path: str | os.PathLike) -> str:
    """``dimer`` for ``dimer.result.json``, ``x`` for ``x.json``."""
    name = Path(path).name
    return name[: -len(RESULT_SUFFIX)] if name.endswith(RESULT_SUFFIX) else input_stem(name)


def default_result_path(input_path: str | os.PathLike) -> Path:
    """``INPUT.result.json`` next to the input."""
    path = Path(input_path)
    return path.with_name(input_stem(path) + RESULT_SUFFIX)


def collect_inputs(paths: Iterable[str | os.PathLike], molecules: bool = False) -> list[Path]:
    """Input files named or found (sorted) in the directories named: ``*.json`` but not
    ``*.result.json``, or with ``molecules`` the molecule files (``*.xyz``, ...)."""
    from ..planning.molecule_files import MOLECULE_SUFFIXES, is_molecule_file

    kinds = (
        f"molecule files ({', '.join('*' + s for s in MOLECULE_SUFFIXES)})" if molecules else "*.json inputs"
    )
    found: list[Path] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            children = sorted(
                p
                for p in entry.iterdir()
                if p.is_file()
                and (
                    is_molecule_file(p)
                    if molecules
                    else p.suffix == ".json" and not p.name.endswith(RESULT_SUFFIX)
                )
            )
            if not children:
                raise InputError(f"directory {str(entry)!r} holds no {kinds}")
            found.extend(children)
        else:
            found.append(entry)
    if not found:
        raise InputError("no input files given")
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


# -- results --------------------------------------------------------------------------------------


def load_result(path: str | os.PathLike) -> Any:
    """A ManyBodyResult (v1 or v2, by its ``schema_version``) read from JSON; InputError if it is not one."""
    from ..planning.inputs import one_line_validation_error

    path = Path(path)
    if not path.is_file():
        raise InputError(f"result file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"result file {str(path)!r} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InputError(f"result file {str(path)!r} is nested too deeply to read: no result is") from None
    if not isinstance(data, dict):
        raise InputError(f"result file {str(path)!r} holds no ManyBodyResult object")
    try:
        return manybody_result_model(result_version(data))(**data)
    except Exception as exc:  # noqa: BLE001 - pydantic v1 and v2 errors alike
        raise InputError(f"{path}: {one_line_validation_error(exc, 'ManyBodyResult', data)}") from None


def finished_result(path: Path, digest: str, screening: dict[str, float] | None = None) -> Any | None:
    """The stored result of the input with ``digest``, or None when it must be computed (again).

    ``screening`` is the run's cutoffs as a result records them (None: unscreened); a result screened
    otherwise is computed again, its fragments answered from the cache.
    """
    if not path.is_file():
        return None
    try:
        result = load_result(path)
    except InputError as exc:
        logger.warning("%s is not a valid result (%s): computing it again", path, exc)
        return None
    stored = (result.extras or {}).get("qcmb_parsl", {}).get("input_sha256")
    if not result.success:
        logger.warning("%s records a failed calculation: computing it again", path)
        return None
    if stored is not None and stored != digest:
        logger.warning("%s was computed from another version of its input: computing it again", path)
        return None
    stored_screening = (result.extras or {}).get("qcmb_parsl", {}).get("screening")
    if (stored_screening or {}).get("cutoffs") != screening:
        logger.warning("%s was screened otherwise: computing it again", path)
        return None
    return result


def mark_input(result: Any, input_file: InputFile) -> Any:
    """Record in the result which input (path and digest) it was computed from, and the molecule file
    it was built from."""
    record = result.extras["qcmb_parsl"]
    record.update(input_file=str(input_file.path), input_sha256=input_file.digest)
    if input_file.source is not None:
        record["molecule_file"] = str(input_file.source)
    return result


def result_json(result: Any) -> str:
    """The result as indented JSON text, v1 or v2 alike."""
    return dump_json(result, indent=1) + "\n"


def write_result(result: Any, path: str | os.PathLike) -> Path:
    """Write the result JSON atomically, never through a symlink (see the module's docstring)."""
    text = result_json(result)
    return _write_atomic(Path(path), lambda handle: handle.write(text))


def save_result(result: Any, path: str | os.PathLike) -> Path:
    """Write a computed result, or raise OutputError saying where the work is when that fails.

    With a cache the message names it: a rerun answers every fragment from there. Without one the
    result is written to a fallback file (the temporary directory, else the working directory), and
    the message names that file.
    """
    path = Path(path)
    try:
        return write_result(result, path)
    except OSError as exc:
        reason = f"cannot write result file {str(path)!r}: {exc.strerror or exc}"
    cache_dir = (result.extras or {}).get("qcmb_parsl", {}).get("cache_dir")
    if cache_dir:
        raise OutputError(
            f"{reason}; every fragment is in the cache {os.path.abspath(cache_dir)}: "
            "make room and rerun, nothing is recomputed"
        )
    text = result_json(result)
    for directory in (Path(tempfile.gettempdir()), Path.cwd()):
        fallback = _write_fallback(text, directory, result_stem(path))
        if fallback is not None:
            raise OutputError(f"{reason}; the result was written to {fallback} instead")
    raise OutputError(f"{reason}, nor into the temporary or the working directory: rerun with a cache")


def _write_fallback(text: str, directory: Path, stem: str) -> str | None:
    """A new private file in ``directory`` holding ``text``, or None (and nothing left) when it fails."""
    try:
        fd, name = tempfile.mkstemp(prefix=f"{stem}.", suffix=RESULT_SUFFIX, dir=directory)
    except OSError as exc:
        logger.error("no fallback result file in %s: %s", directory, exc)
        return None
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    except OSError as exc:
        os.unlink(name)
        logger.error("no fallback result file in %s: %s", directory, exc)
        return None
    return name


# -- the campaign's summary table -----------------------------------------------------------------


def write_summary_csv(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """The campaign's summary table (:data:`SUMMARY_COLUMNS`), one row per input, written atomically."""

    def write(handle: IO[str]) -> None:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)

    return _write_atomic(Path(path), write)


# -- checks before computing, and the one way to write --------------------------------------------


def check_result_path(
    path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (), option: str = "result file"
) -> Path:
    """``path`` when a result can be written there; OutputError before anything is computed if not: a
    directory, a place that cannot be written, or one of ``inputs`` (named ``option`` in the message)."""
    shown = os.fspath(path)
    path = _check_file_place(Path(path))
    for source in inputs:
        if same_file(path, Path(source)):
            raise OutputError(
                f"{option} {shown} is the input {os.fspath(source)}: name another result file, e.g. "
                f"{default_result_path(source)}"
            )
    _check_writable_directory(path.parent, f"result file {str(path)!r}")
    return path


def same_file(first: Path, second: Path) -> bool:
    """Whether two paths name one file (through links, ``..`` and the like), existing or not."""
    if first.exists() and second.exists():
        return os.path.samefile(first, second)
    return first.resolve() == second.resolve()


def check_outputs_spare_inputs(outputs: Iterable[Path], inputs: Iterable[Path], where: str) -> None:
    """OutputError, before anything is computed, when a file to be written is one of the inputs."""
    sources = list(inputs)
    for output in outputs:
        for source in sources:
            if same_file(output, source):
                raise OutputError(
                    f"{where}: {output} would be written over the input {source}: choose another output "
                    "directory"
                )


def check_output_dir(directory: str | os.PathLike, names: Iterable[str] = ()) -> Path:
    """``directory`` when files ``names`` can be written into it (it is created at the first write).

    The directory is probed once (a shared file system pays for every file created), each name only
    looked at.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"output directory {str(directory)!r} is a file: name a directory")
    _check_writable_directory(directory, f"output directory {str(directory)!r}")
    for name in names:
        _check_file_place(directory / name)
    return directory


def _check_file_place(path: Path) -> Path:
    """No directory or special file (device, pipe) where a result file is to be written."""
    if path.is_dir():
        raise OutputError(
            f"result file {str(path)!r} is a directory: name a file, e.g. {path / 'result.json'}"
        )
    if path.exists() and not path.is_file():
        raise OutputError(f"result file {str(path)!r} exists and is not a regular file: name another file")
    return path


def _check_writable_directory(directory: Path, what: str) -> None:
    """The nearest existing ancestor must be a directory this process can create files in."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{what}: {str(existing)!r} is not a directory")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise OutputError(
            f"{what}: cannot create files in {str(existing)!r} ({exc.strerror or exc})"
        ) from None


def _write_atomic(path: Path, write: Callable[[IO[str]], object]) -> Path:
    """Write through a fresh file beside ``path`` (O_EXCL, O_NOFOLLOW), then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(8)}.partial")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(partial, flags, 0o666)
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path

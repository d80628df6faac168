"""What of a file that arrived may be read: regular files, and links that stay in the project.

Ingest asks `refusal` before it opens anything. A FIFO, socket or device is
refused with one line and never opened (opening a FIFO for reading waits for a
writer, reading a device may never end). A symbolic link in a watched folder
whose target lies outside the project, or inside mldeck's own `.mldeck/`, is
refused unless `[watch] follow_symlinks = true`: a link must not make mldeck
read, snapshot or copy into its quarantine a file the team did not drop. A
link passed by name to `mldeck ingest` from elsewhere is the user's explicit
choice and is followed. `open_regular` opens without blocking and checks the
type again, for a file swapped between the check and the open.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from engine.core.errors import InputFileError

KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


def utf8_text(text: str) -> str:
    """`text` with the bytes of a file name that are not UTF-8 (kept by Python as lone
    surrogates) written as `\\xNN`, so JSON, a database or a terminal can hold it."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def display_name(text: str) -> str:
    """A name as a person can read it and any text file or database can hold it.

    Bytes that are not UTF-8 become `\\xNN`; control characters (a newline in a
    file name) become escapes.
    """
    text = utf8_text(text)
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def kind_of(mode: int) -> str | None:
    """What a non-regular file is ("a FIFO (named pipe)", ...), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in KINDS:
        if test(mode):
            return kind
    return "not a regular file"


def refusal(
    path: Path,
    *,
    project_root: Path,
    state_dir: Path,
    watched: list[Path],
    follow_symlinks: bool,
) -> str | None:
    """Why `path` must not be read, as one line naming it, or None when it may be.

    Args:
        path: the file as it was named (absolute; a link not yet followed).
        project_root: links in watched folders must resolve inside it...
        state_dir: ...but not into mldeck's own files.
        watched: the watched folders (data/incoming, data/labels).
        follow_symlinks: `[watch] follow_symlinks`: take links that leave the project.
    """
    name = display_name(path.name)
    try:
        os.fsencode(str(path)).decode("utf-8")
    except UnicodeDecodeError:
        return (
            f"{display_name(str(path))}: the path is not valid UTF-8 text: refused, not read"
            " (rename the file, or the folder, with UTF-8 characters)"
        )
    try:
        link_mode = path.lstat().st_mode
    except FileNotFoundError:
        return f"{name}: it is gone (removed or renamed before it was read)"
    except OSError as exc:
        return f"{name}: cannot be examined ({exc.strerror})"
    if stat.S_ISLNK(link_mode):
        try:
            target = path.resolve(strict=True)
        except FileNotFoundError:
            return f"{name}: a symbolic link to {display_name(os.readlink(path))}, which does not exist"
        except (OSError, RuntimeError):  # a loop (RuntimeError before Python 3.13)
            return f"{name}: a symbolic link that cannot be followed (a loop?)"
        in_watched = path.parent.resolve() in [folder.resolve() for folder in watched]
        if in_watched and not follow_symlinks:
            root = project_root.resolve()
            if not target.is_relative_to(root):
                return (
                    f"{name}: a symbolic link to {display_name(str(target))}, outside the project:"
                    " refused, not read (set [watch] follow_symlinks = true in mldeck.toml"
                    " to take links that leave the project)"
                )
            if target.is_relative_to(state_dir.resolve()):
                return (
                    f"{name}: a symbolic link to {display_name(str(target))}, inside mldeck's"
                    " own .mldeck/ folder: refused, not read"
                )
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"{name}: cannot be examined ({exc.strerror})"
    kind = kind_of(mode)
    if kind is not None:
        via = " (through a symbolic link)" if stat.S_ISLNK(link_mode) else ""
        return f"{name}: {kind}{via}, not a regular file: refused, not read"
    return None


def open_regular(path: Path) -> BinaryIO:
    """Open a file for reading in binary, without blocking, only if it is a regular file.

    Raises:
        InputFileError: it is not a regular file (it was never read).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        kind = kind_of(os.fstat(fd).st_mode)
        if kind is not None:
            raise InputFileError(
                f"{display_name(path.name)}: {kind}, not a regular file: refused, not read"
            )
        # O_NONBLOCK changes nothing for a regular file; clear it all the same.
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise

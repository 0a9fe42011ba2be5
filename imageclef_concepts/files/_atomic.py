"""How the library touches a user's files: it reads regular files only and writes atomically.

* Reading: :func:`open_regular_file` opens a path only when it is a regular
  file, so that a named pipe never blocks and a device is never read (the
  check is made on the opened descriptor, with no race).
* Writing: every file the library writes (models, archives, run files,
  plots, model cards, checkpoints) goes to a temporary file beside the
  target and is moved into place with ``os.replace``, so that a failed or
  interrupted write never damages what was at the path. The new file takes
  the mode a plain ``open`` would give it (the umask's, or the mode of the
  file it replaces); a target that exists and is not a regular file (a
  folder, a device, a pipe) is refused, and a symbolic link is written
  through, as ``open`` does.

Standard library only: the command line imports it before anything heavy.
"""

import hashlib
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path


class NotARegularFileError(OSError):
    """A path that names a folder, a pipe, a device or a socket where a file was expected."""


def file_kind(mode):
    """What a file of this mode is, in words ("a folder", "a named pipe"...)."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def shown_name(name):
    r"""A file name or an id as text that any UTF-8 file or terminal takes.

    ``os.fsdecode`` (``os.listdir``, ``Path``) gives a name's bytes that are
    not UTF-8 as lone surrogates (``b"caf\xe9"`` as ``"caf\udce9"``), which a
    strict UTF-8 writer refuses with a ``UnicodeEncodeError``. Here they are
    shown as ``\xNN`` (``caf\xe9``); any other name is returned as it is. For
    text read by people (messages, reports); a file a program reads back
    keeps the bytes, or refuses the name.

    >>> shown_name("caf\udce9.jpg"), shown_name("café.jpg")
    ('caf\\xe9.jpg', 'café.jpg')
    """
    text = os.fsdecode(name)
    if is_utf8_text(text):
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file name gives: shown as \udNNN
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def shown_capped(text, width=1000):
    """``text`` for a message, cut at ``width`` characters with its full length said: a 50 MB
    id (a file's last line) is no 50 MB message. Wide enough for a long path and the whole
    reason given after it."""
    return text if len(text) <= width else f"{text[:width]}... ({len(text):,} characters)"


def listing(summary, problems, shown=20):
    """``summary`` and the first ``shown`` problems (ids, "file: reason"), one a line, each
    :func:`shown_capped`; how many more, said."""
    problems = [str(problem) for problem in problems]
    lines = [f"{summary}:"] + [f"  {shown_capped(problem)}" for problem in problems[:shown]]
    if len(problems) > shown:
        lines.append(f"  ... and {len(problems) - shown} more")
    return "\n".join(lines)


def is_utf8_text(text):
    """True unless ``text`` holds a lone surrogate (bytes that were not UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def folder_identity(path):
    """What tells the folder at ``path`` from another put there later: (device, inode),
    None when nothing is there."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def folder_replaced(path, identity, marker):
    """Why the folder at ``path`` is no longer the one of ``identity`` that holds the
    library's ``marker`` file (a store's manifest, a run's plan); None while it is. What
    the library claimed is written into only while this is None: never a folder put at
    its path since, nor one made again after it was deleted."""
    now = folder_identity(path)
    if now is None:
        return "it was deleted"
    if now != identity:
        return "another folder is at its path now"
    try:
        if not stat.S_ISREG(os.lstat(os.path.join(path, marker)).st_mode):
            return f"its {marker} is not a file"
    except OSError:
        return f"its {marker} is gone"
    return None


def _article(noun):
    return "an" if noun[:1].lower() in "aeiou" else "a"


def check_regular_file(path, what="file"):
    """Raise unless ``path`` is a regular file (``FileNotFoundError`` when nothing is there,
    :class:`NotARegularFileError` for a folder, a pipe or a device), without opening it."""
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except ValueError:  # a NUL or a lone surrogate no file name gives
        raise _no_such_name(path, what) from None
    if not stat.S_ISREG(mode):
        raise NotARegularFileError(f"{path} is {file_kind(mode)}, not {_article(what)} {what}")


def open_regular_file(path, what="file"):
    """Open ``path`` for binary reading if it is a regular file.

    Parameters
    ----------
    path : str or path-like
    what : str, default="file"
        What the file is for, in messages ("image", "concept file"...).

    Raises
    ------
    FileNotFoundError
        When nothing is at ``path``.
    NotARegularFileError
        For a folder, a named pipe, a device or a socket. A pipe is opened
        without blocking, so that no writer is waited for.
    """
    path = os.fspath(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except ValueError:
        raise _no_such_name(path, what) from None
    except IsADirectoryError:
        raise NotARegularFileError(f"{path} is a folder, not {_article(what)} {what}") \
            from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        raise NotARegularFileError(f"{path} is {file_kind(mode)}, not {_article(what)} {what}")
    if hasattr(os, "set_blocking"):
        os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "rb")


def content_digest(path, limit=None):
    """The SHA-256 of a regular file's bytes, read in blocks (its first ``limit`` bytes at
    once, if given: a few KB); None when it cannot be read (a pipe is never read)."""
    try:
        hashed = hashlib.sha256()
        with open_regular_file(path) as handle:
            if limit is not None:
                hashed.update(handle.read(limit))
            else:
                for block in iter(lambda: handle.read(2**20), b""):
                    hashed.update(block)
        return hashed.hexdigest()
    except (OSError, ValueError):
        return None


def _no_such_name(path, what):
    shown = shown_name(path).replace("\0", "\\x00")
    return FileNotFoundError(f"{what} not found: {shown} (no file can have this "
                             "name: it holds a NUL or a lone surrogate no file name gives)")


def checked_file_name(path, what="output"):
    """``path`` as ``os.fsdecode`` gives it, refused by name when it holds a lone surrogate
    that no file name's bytes give (``"\\ud800"``): a ``UnicodeEncodeError`` naming no file
    otherwise, from the first system call."""
    path = os.fsdecode(path)
    try:
        os.fsencode(path)
    except UnicodeEncodeError:
        raise ValueError(f"{what} {shown_name(path)} is not a file name this system can hold "
                         "(a lone surrogate that no file name's bytes give): nothing is "
                         "written.") from None
    if "\0" in path:  # 'embedded null byte', naming nothing, from the first system call
        raise ValueError(f"{what} {shown_name(path)} holds a NUL character, which no file "
                         "name can hold: nothing is written.")
    return path


def check_writable_target(path, what="output"):
    """Refuse, before any work, a target that exists and is not a regular file.

    Replacing it would destroy a folder's place, a device node or a pipe; a name
    no file can have (:func:`checked_file_name`), a new file whose folder does not
    exist (``FileNotFoundError``) and a file in a folder that cannot be written
    (``PermissionError``: another user's, a read-only disk) are refused too, each
    naming the file and its folder (not the temporary file a write would have made). The
    folder is the one a symbolic link's target is in (written through, as ``open`` does), and
    another user's file in a sticky folder (``/tmp``'s mode 1777) is refused: only its owner
    may replace it.
    """
    name = checked_file_name(path, what)
    folder = os.path.dirname(os.path.realpath(name) if os.path.islink(name) else name) or "."
    try:
        found = os.stat(name)
    except FileNotFoundError:  # a new file: its folder must be there (not the temporary named)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{what} {name}: the folder {folder} does not exist.") from None
        found = None
    except OSError as error:  # a looping link, a folder that cannot be searched
        raise type(error)(f"{what} {name}: {error.strerror}.") from None
    if found is not None and not stat.S_ISREG(found.st_mode):
        raise NotARegularFileError(f"{what} {os.fspath(path)} is {file_kind(found.st_mode)}: "
                                   "name a regular file to write")
    if not os.access(folder, os.W_OK | os.X_OK):  # the file is replaced through its folder
        raise PermissionError(f"{what} {name}: the folder {folder} is not writable.")
    if found is not None and _sticky_refuses(folder, found.st_uid):
        raise PermissionError(f"{what} {name}: the folder {folder} lets only a file's owner "
                              "replace it (its sticky bit, as /tmp's), and the file is another "
                              "user's: name a new file.")


def _sticky_refuses(folder, owner):
    """Whether ``folder``'s sticky bit stops this user replacing a file ``owner`` has there."""
    if not hasattr(os, "geteuid"):
        return False
    held = os.stat(folder)
    return bool(held.st_mode & stat.S_ISVTX) and os.geteuid() not in (0, held.st_uid, owner)


def check_not_an_input(path, inputs, what="output"):
    """Refuse, before any work, an output that is one of the inputs (``ValueError``).

    ``inputs`` are paths (None is skipped): a file is compared with ``path``
    itself, a folder by each of its files (the images of a folder read), by
    identity on disk, so that another name of the same file is refused too.
    """
    try:
        target = os.stat(path)
    except OSError:
        return  # nothing there yet: nothing to overwrite
    for given in inputs:
        if given is None or not os.path.exists(given):
            continue
        files = ([entry.path for entry in os.scandir(given)] if os.path.isdir(given)
                 else [os.fspath(given)])
        for file in files:
            try:
                same = os.path.samestat(os.stat(file), target)
            except OSError:
                continue
            if same:
                raise ValueError(f"{what} {os.fspath(path)} is also an input ({file}); it "
                                 "would be overwritten.")


def check_outside(folder, inputs, what):
    """Refuse, before anything is made there, a ``folder`` to write (a store, a run's output)
    that is one of the ``inputs`` folders or inside one (``ValueError``): the user's data
    would gain the library's files without a word, and be read as data.

    ``inputs`` are ``(name, folder)`` pairs (a None folder is skipped), compared with
    ``..`` and links resolved; ``what`` names ``folder`` in the message.
    """
    place = resolved(folder, what)
    for name, given in inputs:
        if given is None:
            continue
        read = resolved(given, name)
        if place == read or read in place.parents:
            where = "is" if place == read else "is inside"
            raise ValueError(f"{what} {os.fspath(folder)} {where} {name} {os.fspath(given)}: "
                             "name a folder outside it.")


def resolved(path, what):
    """``path`` absolute, ``..`` and links resolved; a path through a looping link refused
    naming ``what`` (``OSError``), not Python 3.11's ``RuntimeError: Symlink loop``."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError):  # a loop: RuntimeError before Python 3.13, then OSError
        raise OSError(f"{what} {os.fspath(path)}: too many levels of symbolic links (a link "
                      "loop).") from None


def _current_umask():
    try:  # Linux tells it without changing it (changing it is not thread-safe)
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(path):
    """The mode ``open`` would leave at ``path``: the existing file's, or 0666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_current_umask()


@contextmanager
def replaced_atomically(path, temporary=None):
    """Yield a temporary file name beside ``path``; move the file onto ``path`` on success.

    For writers that want a file name (Keras, joblib, matplotlib): if the
    block fails or is interrupted, the temporary file is removed and ``path``
    is as it was. The name keeps ``path``'s extension, which some writers read.

    Parameters
    ----------
    path : str or path-like
    temporary : str or path-like, default=None
        The temporary file's name, for a writer alone in a folder it locked
        (a training checkpoint): a write killed half-way then leaves a file
        whose name the writer knows, to remove with its own. By default a new
        unique name.

    Raises
    ------
    NotARegularFileError
        Before anything is written, when ``path`` (or ``temporary``) exists
        and is not a regular file (a folder, a device, a pipe, a link for
        ``temporary``).
    ValueError
        Before anything is written, when ``path`` holds a lone surrogate that
        no file name gives (``"\\ud800"``; those ``os.fsdecode`` gives are written).
    """
    # bytes as os.fsdecode gives them (a name that is not UTF-8 kept as surrogates)
    given = checked_file_name(path)
    path = os.path.realpath(given)  # through a symbolic link, as open() writes
    check_writable_target(path)
    if temporary is None:
        handle, temporary = tempfile.mkstemp(suffix=os.path.splitext(path)[1],
                                             prefix=".saving-", dir=os.path.dirname(path))
    else:
        temporary = os.fspath(temporary)
        _remove_leftover(temporary)
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, _mode_for(path))
        os.replace(temporary, path)
    except OSError as error:  # a full disk: a write names no file, or the temporary one
        if error.errno is None or error.filename not in (None, temporary):
            raise
        raise OSError(error.errno, error.strerror, given) from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _remove_leftover(temporary):
    """Remove what a killed write left at a fixed temporary name (a regular file only)."""
    try:
        mode = os.lstat(temporary).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise NotARegularFileError(f"{temporary} is {file_kind(mode)}, not a file this library "
                                   "left: it is not removed, and nothing is written.")
    os.remove(temporary)


def write_atomically(path, write, temporary=None):
    """Call ``write(binary_handle)`` on a temporary file beside ``path``, then move it there.

    ``temporary`` is as for :func:`replaced_atomically`.
    """
    with replaced_atomically(path, temporary) as name, open(name, "wb") as stream:
        write(stream)


def write_in_folder(folder, name, write):
    """Call ``write(binary_handle)`` on a new file in an open folder, then name it ``name``.

    ``folder`` is the descriptor of a folder opened earlier (``os.open(path,
    os.O_DIRECTORY)``): the file lands in that folder whatever was put at its
    path since, and nowhere if it was deleted (a removed folder takes no new
    file). ``name`` must be a plain name, not a path. If ``write`` fails,
    the temporary file is removed and nothing is named ``name``.
    """
    temporary = f".saving-{os.urandom(8).hex()}{os.path.splitext(name)[1]}"
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                     0o666 & ~_current_umask(), dir_fd=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        try:
            os.remove(temporary, dir_fd=folder)
        except OSError:
            pass
        raise

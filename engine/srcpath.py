"""Where a relative `src:` (template, copy; script's file) is found on the controller: Ansible's search.

ansible-core's action plugins look a relative `src` up with `DataLoader.path_dwim_relative_stack`
over the task's search path (`Base.get_search_path`): the folders of the roles it runs in
(the role first, then the roles that depend on it), then the folder of the file the task is
written in, then the playbook's folder as a last resort. In each folder it tries
`<folder>/<templates|files>/<src>` before `<folder>/<src>`. Paths starting with `/` or `~`
are taken as written.

The loader (opsbook.reuse) calls `find` for every step whose `src` is a literal path and
writes the path found into the step; one that no folder holds is an error kept in
`Runbook.unfound_sources`, which `opsbook check` reports and `run` and `plan` refuse. A templated `src` (`"{{ x }}.j2"`) is not
judged before the run: the step keeps its `stack` (Step.src_dirs) and the action searches
it when it runs (ActionContext.local_path with a subfolder).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path

# The Ansible modules (the last part of an action's name) whose `src` is a controller file,
# and the subfolder Ansible searches for it (`_find_needle(<folder>, src)`).
SUBFOLDER = {"template": "templates", "copy": "files", "script": "files"}
FILE_ARG = {"template": "src", "copy": "src", "script": "path"}  # the argument that names it in opsbook


@dataclass(frozen=True)
class SearchPath:
    """The folders a step's relative `src` is searched in: `stack` is the roles' folders
    (innermost first) and the folder of the file the step is written in; `basedir` the
    runbook's folder."""

    stack: tuple[Path, ...]
    basedir: Path

    def candidates(self, src: str, subfolder: str) -> list[Path]:
        """Every path tried for `src`, in Ansible's order, without repeats."""
        out: list[Path] = []
        for folder in (*self.stack, self.basedir):
            # Ansible means to skip <folder>/templates/ when src starts with "templates/", but
            # compares bytes with str (never equal): it always tries both. So does opsbook.
            out += [folder / subfolder / src, folder / src]
        return list(dict.fromkeys(out))

    def find(self, src: str, subfolder: str) -> Path | None:
        """The first candidate that exists (a file or a folder, as Ansible tests), or None."""
        return next((p for p in self.candidates(src, subfolder) if p.exists()), None)

    def near(self, src: str, subfolder: str) -> str | None:
        """A file in the searched folders whose name is close to `src`'s (a typo), named as
        `src` would name it, or None."""
        wanted = Path(src)
        folders = list(dict.fromkeys(p.parent for p in self.candidates(src, subfolder)))
        names: dict[str, str] = {}
        for folder in folders:
            try:
                with os.scandir(folder) as found:
                    entries = [e.name for e in found if e.is_file() and not e.name.startswith(".")]
            except OSError:
                continue
            for entry in entries:
                names.setdefault(entry, str(wanted.parent / entry) if str(wanted.parent) != "." else entry)
        close = get_close_matches(wanted.name, sorted(names), n=1, cutoff=0.6)
        return names[close[0]] if close else None


def is_literal(src: str) -> bool:
    """Whether `src` is a path as written (no template): one the loader can look up."""
    from opsbook.template import is_template

    return not is_template(src)


def is_absolute(src: str) -> bool:
    """Ansible takes `/x` and `~/x` as written, without a search."""
    return src.startswith(("/", "~"))

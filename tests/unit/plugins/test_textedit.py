"""Ansible's lineinfile/blockinfile/replace rules (opsbook_plugins.ssh.textedit), file by file.

The expected texts are what ansible-core 2.19 writes for the same arguments; the
differential suite (cases/file_editing.yaml) compares the two tools end to end.
"""

from __future__ import annotations

import pytest
from opsbook_plugins.ssh import textedit
from opsbook_plugins.ssh.filewrite import validate_command

CONF = "# sshd\nPort 22\n#PermitRootLogin yes\nUsePAM yes\n"


def test_lineinfile_regexp_replaces_the_last_matching_line():
    edit = textedit.lineinfile("a=1\nb=2\na=3\n", "/f", regexp="^a=", line="a=9")
    assert edit.text == "a=1\nb=2\na=9\n" and edit.changed and edit.msg == "line replaced"


def test_lineinfile_firstmatch_and_exact_line_already_there():
    assert textedit.lineinfile("a=1\na=3\n", "/f", regexp="^a=", line="a=9", firstmatch=True).text == "a=9\na=3\n"
    again = textedit.lineinfile(CONF, "/f", line="Port 22")
    assert not again.changed and again.text == CONF


def test_lineinfile_insertafter_insertbefore_bof_eof():
    assert textedit.lineinfile(CONF, "/f", line="X", insertafter="^Port").text == \
        "# sshd\nPort 22\nX\n#PermitRootLogin yes\nUsePAM yes\n"
    assert textedit.lineinfile(CONF, "/f", line="X", insertbefore="^Port").text == \
        "# sshd\nX\nPort 22\n#PermitRootLogin yes\nUsePAM yes\n"
    assert textedit.lineinfile(CONF, "/f", line="X", insertbefore="BOF").text == "X\n" + CONF
    assert textedit.lineinfile("no newline", "/f", line="X").text == "no newline\nX\n"
    assert textedit.lineinfile(CONF, "/f", line="X", insertafter="^nomatch").text == CONF + "X\n"


def test_lineinfile_backrefs_expand_or_change_nothing():
    edit = textedit.lineinfile(CONF, "/f", regexp=r"^#?PermitRootLogin (\w+)", line=r"PermitRootLogin no # was \1",
                               backrefs=True)
    assert "PermitRootLogin no # was yes\n" in edit.text
    untouched = textedit.lineinfile(CONF, "/f", regexp="^Missing(.*)", line=r"x\1", backrefs=True)
    assert not untouched.changed and untouched.text == CONF


def test_lineinfile_absent_create_and_errors():
    gone = textedit.lineinfile(CONF, "/f", regexp="^#", state="absent")
    assert gone.text == "Port 22\nUsePAM yes\n" and gone.msg == "2 line(s) removed" and gone.data == {"found": 2}
    assert textedit.lineinfile(None, "/f", line="a", state="absent").msg == "file not present"
    assert textedit.lineinfile(None, "/f", line="a", create=True).text == "a\n"
    with pytest.raises(textedit.EditError, match="Destination /f does not exist !"):
        textedit.lineinfile(None, "/f", line="a")
    with pytest.raises(textedit.EditError, match="regexp is required with backrefs=true"):
        textedit.lineinfile(CONF, "/f", line="a", backrefs=True)
    with pytest.raises(textedit.EditError, match="not a valid regular expression"):
        textedit.lineinfile(CONF, "/f", line="a", regexp="(")


def test_blockinfile_insert_update_remove():
    first = textedit.blockinfile(CONF, "/f", block="Match User ops\n  X11Forwarding no")
    assert first.text == CONF + ("# BEGIN ANSIBLE MANAGED BLOCK\nMatch User ops\n  X11Forwarding no\n"
                                 "# END ANSIBLE MANAGED BLOCK\n") and first.msg == "Block inserted"
    same = textedit.blockinfile(first.text, "/f", block="Match User ops\n  X11Forwarding no")
    assert not same.changed
    updated = textedit.blockinfile(first.text, "/f", block="Match User ops")
    assert updated.text == CONF + "# BEGIN ANSIBLE MANAGED BLOCK\nMatch User ops\n# END ANSIBLE MANAGED BLOCK\n"
    removed = textedit.blockinfile(updated.text, "/f", state="absent")
    assert removed.text == CONF and removed.msg == "Block removed"


def test_blockinfile_markers_and_anchors():
    edit = textedit.blockinfile(CONF, "/f", block="b", marker="## {mark} app", marker_begin="start",
                                marker_end="stop", insertafter="^Port")
    assert edit.text == "# sshd\nPort 22\n## start app\nb\n## stop app\n#PermitRootLogin yes\nUsePAM yes\n"
    assert textedit.blockinfile(CONF, "/f", block="b", insertbefore="BOF").text.startswith("# BEGIN ANSIBLE")
    assert textedit.blockinfile(None, "/f", block="b", create=True).msg == "File created"
    with pytest.raises(textedit.EditError, match="Path /f does not exist !"):
        textedit.blockinfile(None, "/f", block="b")


def test_replace_multiline_and_between_after_before():
    edit = textedit.replace(CONF, "/f", regexp=r"^(\w+) yes$", replace=r"\1 no")
    assert edit.text == "# sshd\nPort 22\n#PermitRootLogin yes\nUsePAM no\n" and edit.msg == "1 replacements made"
    text = "[a]\nk=1\n[b]\nk=1\n"
    assert textedit.replace(text, "/f", regexp="k=1", replace="k=2", after=r"\[b\]").text == "[a]\nk=1\n[b]\nk=2\n"
    assert textedit.replace(text, "/f", regexp="k=1", replace="k=2", before=r"\[b\]").text == "[a]\nk=2\n[b]\nk=1\n"
    nothing = textedit.replace(text, "/f", regexp="k=1", after="nomatch")
    assert not nothing.changed and nothing.msg.startswith("Pattern for before/after params did not match")
    with pytest.raises(textedit.EditError, match="Path /f does not exist !"):
        textedit.replace(None, "/f", regexp="x")


def test_validate_command_puts_the_temporary_file_where_percent_s_is():
    assert validate_command("nginx -t -c %s") == 'nginx -t -c "$t"'
    assert validate_command("visudo -cf %s") == 'visudo -cf "$t"'
    assert validate_command("check --file=%s.conf 'a b'") == "check --file=\"$t\".conf 'a b'"

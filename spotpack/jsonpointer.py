"""RFC 6901 JSON Pointers, as JSON Patch paths need them.

A reference token is escaped ``~`` -> ``~0`` first, then ``/`` -> ``~1``; the
order matters, or ``/`` would come out as ``~01``. Annotation and label keys
such as ``spotpack.io/vgpu-source`` contain ``/`` and so must be escaped before
they go into a path: an unescaped key points one level too deep and the API
server rejects the whole patch.
"""

from __future__ import annotations


def escape(token: str | int) -> str:
    """One reference token, escaped (``a/b~c`` -> ``a~1b~0c``); ints for list indexes."""
    return str(token).replace("~", "~0").replace("/", "~1")


def path(*tokens: str | int) -> str:
    """A pointer from unescaped tokens: ``path("metadata", "annotations", "a/b")``.

    No tokens is the empty pointer ``""``, the whole document.
    """
    return "".join("/" + escape(token) for token in tokens)

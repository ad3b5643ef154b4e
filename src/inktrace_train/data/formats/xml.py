"""Safe XML: no DTD or external entity is ever resolved or fetched, entity declarations are
refused (so no expansion bomb), and the file size and nesting depth are bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Tuple
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from inktrace_train.data.formats import MAX_FILE_BYTES

MAX_DEPTH = 200  # deeper nesting is refused: no real glyph file nests this deep


def parse(path: Path) -> Element:
    """The root element of an XML file.

    Raises:
        ValueError: too large, not well-formed, or hostile (entities, external references).
    """
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(f"file too large: {size:,} bytes (limit {MAX_FILE_BYTES:,})")
    return parse_bytes(path.read_bytes())


def parse_bytes(data: bytes) -> Element:
    """The root element of an XML document (see :func:`parse`)."""
    try:
        # A DTD may be present (KanjiVG declares attributes in one); entity declarations and
        # external references make defusedxml raise before anything is expanded or fetched.
        return fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as e:
        raise ValueError(f"refused unsafe XML: {type(e).__name__}") from None
    except ParseError as e:
        raise ValueError(f"not well-formed XML: {e}") from None


def local(tag: object) -> str:
    """A tag or attribute name without its namespace: ``{ns}path`` -> ``path``."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def walk(root: Element) -> Iterator[Tuple[Element, Tuple[Element, ...]]]:
    """Every element with its ancestors, in document order, without recursion.

    Raises:
        ValueError: nesting deeper than MAX_DEPTH.
    """
    stack = [(root, ())]
    while stack:
        node, parents = stack.pop()
        if len(parents) > MAX_DEPTH:
            raise ValueError(f"elements nested deeper than {MAX_DEPTH}")
        yield node, parents
        inner = parents + (node,)
        stack.extend((child, inner) for child in reversed(list(node)))

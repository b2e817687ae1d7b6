"""The benchmarks' figures in docs/performance.md: each script owns one section between its two markers."""

from __future__ import annotations


def replace_section(doc, begin, end, text):
    """Put ``text`` (which starts with ``begin`` and ends with ``end``) in place of that section of the file
    ``doc``, or append it when the file has no such section yet."""
    content = doc.read_text()
    if begin in content and end in content:
        head, rest = content.split(begin, 1)
        content = head + text + rest.split(end, 1)[1]
    else:
        content = content.rstrip("\n") + "\n\n" + text + "\n"
    doc.write_text(content)

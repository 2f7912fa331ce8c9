"""report.html: report.md as one self-contained HTML page, figures embedded as base64 PNG.

MLflow's artifact viewer shows a Markdown file as text (its image links stay links) but renders
an HTML file, so the HTML copy is the one users read inside MLflow. It converts the subset of
Markdown that `eirnn.report` writes: headings, paragraphs, bullet lists, pipe tables, fenced
code, images, inline code and bold.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 1.5em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
code { background: #f5f5f5; padding: 0 3px; border-radius: 3px; }
pre { background: #f5f5f5; padding: 0.6em; overflow-x: auto; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 2px; }
"""

_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<path>[^)]+)\)$")


def _inline(text: str) -> str:
    """Escape, then `code` and **bold** (code spans are not parsed further)."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(part)))
    return "".join(out)


def _cells(line: str) -> list[str]:
    # split on pipes that the report did not escape as \|
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [cell.strip().replace("\\|", "|") for cell in cells]


def _image(alt: str, path: str, base: Path) -> str:
    file = base / path
    if not file.is_file():
        return f"<p><em>missing figure: {html.escape(path)}</em></p>"
    data = base64.b64encode(file.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def _table(lines: list[str]) -> str:
    header, rows = _cells(lines[0]), [_cells(line) for line in lines[2:]]
    head = "".join(f"<th>{_inline(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def markdown_to_html(text: str, base: Path) -> str:
    """The body of the page; images are read relative to `base` and embedded."""
    blocks = re.split(r"\n\s*\n", text.strip())
    out: list[str] = []
    index = 0
    while index < len(blocks):
        block = blocks[index]
        index += 1
        if block.startswith("```"):
            # a fenced block may contain blank lines: join blocks up to the closing fence
            while block.count("```") < 2 and index < len(blocks):
                block += "\n\n" + blocks[index]
                index += 1
            code = "\n".join(block.splitlines()[1:-1])
            out.append(f"<pre><code>{html.escape(code)}</code></pre>")
        elif match := re.match(r"^(#{1,6}) (.*)$", block):
            level = len(match.group(1))
            out.append(f"<h{level}>{_inline(match.group(2))}</h{level}>")
        elif match := _IMAGE.match(block.strip()):
            out.append(_image(match.group("alt"), match.group("path"), base))
        elif block.startswith("|"):
            out.append(_table(block.splitlines()))
        elif block.startswith("- "):
            items = "".join(f"<li>{_inline(line[2:])}</li>" for line in block.splitlines())
            out.append(f"<ul>{items}</ul>")
        else:
            out.append(f"<p>{_inline(block)}</p>")
    return "\n".join(out)


def write_html_report(markdown_path: str | Path, out_path: str | Path | None = None) -> Path:
    """Write report.html beside report.md (or at `out_path`) and return its path."""
    markdown_path = Path(markdown_path)
    out_path = Path(out_path) if out_path else markdown_path.with_suffix(".html")
    text = markdown_path.read_text(encoding="utf-8")
    title = html.escape(text.splitlines()[0].lstrip("# ").strip())
    body = markdown_to_html(text, markdown_path.parent)
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )
    out_path.write_text(page, encoding="utf-8")
    return out_path

"""The HTML of reports/index.html: plain HTML and CSS, no script, every image a PNG file beside
the page (pipeline/report.py decides what goes in)."""
from html import escape

FILES = "index_files"  # the page's images, beside it

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } td.number { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; max-width: 1000px; }
img.plot { max-width: 100%; border: 1px solid #eee; }
.gallery td { text-align: center; } .gallery img { width: 112px; height: 112px; object-fit: cover; }
.note { color: #555; font-size: 0.92em; } code { background: #f4f4f4; padding: 0 0.2em; }
"""


def cell(value):
    if isinstance(value, tuple):  # (number, format)
        return '<td class="number">%s</td>' % (value[1] % value[0])
    if isinstance(value, float):
        return '<td class="number">%.4f</td>' % value
    if isinstance(value, int):
        return '<td class="number">%d</td>' % value
    return "<td>%s</td>" % value


def table(headers, rows):
    """headers: plain text; rows: lists of floats, ints, (number, format) or HTML (escape text
    with text())."""
    head = "".join("<th>%s</th>" % escape(h) for h in headers)
    body = "".join("<tr>%s</tr>\n" % "".join(cell(v) for v in row) for row in rows)
    return "<table>\n<tr>%s</tr>\n%s</table>\n" % (head, body)


def text(value):
    return escape(str(value))


def figure(src, alt, caption):
    return ('<figure><img class="plot" src="%s" alt="%s"><figcaption>%s</figcaption></figure>\n'
            % (escape(src), escape(alt), caption))


def image(src, alt):
    return '<img src="%s" alt="%s">' % (escape(src), escape(alt)) if src else '<span class="note">(none)</span>'


def section(title, body):
    return "<h2>%s</h2>\n%s" % (escape(title), body)


def note(message):
    return '<p class="note">%s</p>\n' % message


def page(title, subtitle, sections):
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>%s</title>\n"
            "<style>%s</style>\n</head>\n<body>\n<h1>%s</h1>\n<p class=\"note\">%s</p>\n%s</body>\n</html>\n"
            % (escape(title), STYLE, escape(title), subtitle, "".join(sections)))

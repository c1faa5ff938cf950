"""<out>/index.html of `invoke identify`: each photo with a box, its number and a name on every
face (unknown faces dashed, their number alone), then a row per face: its crop, the decision,
the five best people with their scores, and the gallery photos of the best one. Plain HTML, an
SVG over each photo, every image a file in <out>/index_files/."""
import os
import shutil

from pipeline import report_html as html
from pipeline.people import read_rows
from shared.faces.images import load_rgb, save_rgb
from shared.storage import write_text

SHOWN_WIDTH = 1000  # pixels of a photo's copy on the page
MATCHES_SHOWN = 3  # gallery photos shown beside a face
STYLE = """
svg.photo { max-width: 100%; height: auto; border: 1px solid #ddd; }
svg rect { fill: none; } rect.known { stroke: #1a9641; } rect.unknown { stroke: #d7191c; stroke-dasharray: 12 6; }
svg text { font-weight: bold; font-family: sans-serif; paint-order: stroke; stroke: #fff; }
text.known { fill: #1a9641; } text.unknown { fill: #d7191c; }
.faces img { width: 80px; height: 80px; object-fit: cover; margin-right: 2px; }
"""


def _shown_photo(source, target):
    """A copy of the photo at most SHOWN_WIDTH wide; returns (width, height) of the original."""
    import cv2

    image = load_rgb(source)
    height, width = image.shape[:2]
    scale = min(1.0, SHOWN_WIDTH / float(width))
    save_rgb(target, cv2.resize(image, (int(round(width * scale)), int(round(height * scale))),
                                interpolation=cv2.INTER_AREA) if scale < 1 else image)
    return width, height


def _overlay(src, size, faces):
    """The photo as an SVG in its own pixel coordinates, a box and a label on each face."""
    width, height = size
    scale = max(1.0, width / float(SHOWN_WIDTH))  # labels and lines as thick on the page at any photo size
    parts = ['<svg class="photo" viewBox="0 0 %d %d" width="%d" role="img" aria-label="faces found" '
             'style="font-size: %dpx; stroke-width: %.1f">' % (width, height, min(width, SHOWN_WIDTH), 14 * scale,
                                                               3 * scale),
             '<image href="%s" x="0" y="0" width="%d" height="%d"/>' % (html.text(src), width, height)]
    for row in faces:
        left, top, right, bottom = (float(row[k]) for k in ("left", "top", "right", "bottom"))
        kind = "unknown" if row["decision"] == "unknown" else "known"
        parts.append('<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>'
                     % (kind, left, top, right - left, bottom - top))
        name = "" if kind == "unknown" else " " + row["decision"]  # a crowd of strangers stays readable
        parts.append('<text class="%s" x="%.1f" y="%.1f">%s%s</text>'
                     % (kind, left, max(top - 4 * scale, 14 * scale), html.text(row["face"]), html.text(name)))
    return "".join(parts) + "</svg>\n"


def _copy(source, files, name):
    if not os.path.isfile(source):
        return None
    shutil.copyfile(source, os.path.join(files, name))
    return "%s/%s" % (html.FILES, name)


def _matches(gallery, crop, photos_of, label, files):
    """Thumbnails of the gallery's aligned photos of person `label`."""
    shown = []
    for photo in photos_of.get(label, [])[:MATCHES_SHOWN]:
        src = _copy(os.path.join(gallery, "aligned", crop, photo["batch"], photo["id"]), files, "gallery-" + photo["id"])
        shown.append(html.image(src, "gallery photo"))
    return "".join(shown)


def _face_table(rows, gallery, crop, faces_dir, files, photos_of):
    body = []
    for row in rows:
        face = html.image(_copy(os.path.join(faces_dir, crop, "faces", row["crop"]), files, "face-" + row["crop"]),
                          "face %s" % row["face"])
        best = "<br>".join("%s %s" % (html.text(row.get("name%d" % k)), html.text(row.get("score%d" % k)))
                           for k in range(1, 6) if row.get("name%d" % k))
        matched = _matches(gallery, crop, photos_of, row["label1"], files) if row["decision"] != "unknown" else ""
        body.append([html.text(row["face"]), face, "<b>%s</b>" % html.text(row["decision"]), best, matched])
    return html.table(["face", "crop", "decision", "five best (fused cosine)", "gallery photos of the decision"],
                      body).replace("<table>", '<table class="faces">', 1)


def write_page(out, gallery, rows, staged, photos_dir, crop="112x112"):
    """index.html under `out`; returns its path."""
    files = os.path.join(out, html.FILES)
    shutil.rmtree(files, ignore_errors=True)
    os.makedirs(files)
    photos_of = {}
    for photo in read_rows(os.path.join(gallery, "photos.csv")):
        if photo["status"] == "face":
            photos_of.setdefault(photo["label"], []).append(photo)
    faces_dir = os.path.join(out, ".work", "faces")
    sections = []
    for index, (photo, name) in enumerate(sorted(staged.items(), key=lambda kv: kv[1])):
        mine = [r for r in rows if r["photo"] == photo and r["decision"] != "no face"]
        shown = "photo-%05d.jpg" % index
        size = _shown_photo(os.path.join(photos_dir, name), os.path.join(files, shown))
        body = _overlay("%s/%s" % (html.FILES, shown), size, mine)
        body += (_face_table(mine, gallery, crop, faces_dir, files, photos_of) if mine
                 else html.note("No face found in this photo."))
        sections.append(html.section(photo, body))
    named = sum(1 for r in rows if r["decision"] not in ("unknown", "no face"))
    subtitle = ("%d photos, %d faces: %d named, %d unknown (dashed red), against the gallery %s"
                % (len(staged), sum(1 for r in rows if r["decision"] != "no face"), named,
                   sum(1 for r in rows if r["decision"] == "unknown"), html.text(gallery)))
    page = html.page("Faces identified", subtitle, sections).replace("</style>", STYLE + "</style>", 1)
    path = os.path.join(out, "index.html")
    write_text(path, page)
    return path

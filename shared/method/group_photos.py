"""Identity folders of aligned crops (<root>/<Name>/*.jpg, as LFW's) -> people to enroll and group
photos to identify, with the truth (`invoke data.people`, the people tests, `bench.identify`):

    <out>/people/<Name>/photo-K.jpg   each enrolled person's first photos, each placed in a
                                      photo of its own (known_faces.paste)
    <out>/photos/group-N.jpg          group photos: enrolled people (a photo of theirs that was
                                      not enrolled) and strangers (never enrolled), at different
                                      sizes and places, some damaged as the benchmark damages
                                      images (grayscale, blur, blocky); known_faces.group_photo
    <out>/truth.csv                   photo, person (empty: a stranger), x, y: each face's centre
Same seed, same bytes.
"""
import csv
import io
import os

import numpy as np

from shared.faces import known_faces
from shared.faces.images import load_rgb, save_rgb
from shared.method.benchmark import damage
from shared.storage import write_text

DAMAGE = ("grayscale", "blur", "lowres")
DAMAGE_SHARE = 1.0 / 3


def _images(source, name):
    return sorted(os.listdir(os.path.join(source, name)))


def draw(source, rng, people, photos_each, strangers, appearing):
    """(enrolled names, the `appearing` ones among them, strangers). The people who appear in a
    group photo need one image more than they enrol; strangers have one image and are never enrolled."""
    counts = dict((name, len(_images(source, name))) for name in sorted(os.listdir(source)))
    rich = [n for n in sorted(counts) if counts[n] > photos_each]
    if len(rich) < appearing or len(counts) < people + strangers:
        raise ValueError("%s: too few identities for %d people (%d of them with %d images or more) and %d strangers"
                         % (source, people, appearing, photos_each + 1, strangers))
    shown = [rich[i] for i in sorted(rng.choice(len(rich), appearing, replace=False))]
    others = [n for n in sorted(counts) if n not in shown and counts[n] >= min(photos_each, 2)]
    enrolled = sorted(shown + [others[i] for i in sorted(rng.choice(len(others), people - appearing, replace=False))])
    singles = [n for n in sorted(counts) if counts[n] == 1 and n not in enrolled]
    return enrolled, shown, [singles[i] for i in sorted(rng.choice(len(singles), strangers, replace=False))]


def write_people(source, names, root, rng, photos_each):
    """<root>/<Name with spaces>/photo-K.jpg for every enrolled person; returns {name: folder}."""
    folders = {}
    for name in names:
        folder = name.replace("_", " ")
        for index, image in enumerate(_images(source, name)[:photos_each]):
            photo = known_faces.paste(load_rgb(os.path.join(source, name, image)), known_faces.placement(rng))
            save_rgb(os.path.join(root, folder, "photo-%d.jpg" % index), photo)
        folders[name] = folder
    return folders


def write_group_photos(source, shown, strangers, folder, rng, count, photos_each):
    """`count` group photos sharing out `shown` and `strangers`; returns the truth rows."""
    rows = []
    for number in range(count):
        people = shown[number::count] + strangers[number::count]
        crops = []
        for name in people:
            image = _images(source, name)[photos_each if name in shown else 0]
            crop = load_rgb(os.path.join(source, name, image))
            if rng.uniform() < DAMAGE_SHARE:
                crop = damage(crop, DAMAGE[rng.randint(len(DAMAGE))], rng)
            crops.append(crop)
        order = rng.permutation(len(crops))
        photo, points = known_faces.group_photo([crops[i] for i in order], rng)
        name = "group-%d.jpg" % number
        save_rgb(os.path.join(folder, name), photo)
        for i, face in zip(order, points):
            centre = face.mean(axis=0)
            rows.append([name, people[i] if people[i] in shown else "", round(centre[0], 1), round(centre[1], 1)])
    return rows


def build(source, out, seed=2019, people=10, photos_each=3, strangers=6, group_photos=2, known_per_photo=5):
    """Writes <out>/people, <out>/photos and <out>/truth.csv; returns {LFW name: person folder}."""
    rng = np.random.RandomState(seed)
    enrolled, shown, singles = draw(source, rng, people, photos_each, strangers,
                                    min(people, known_per_photo * group_photos))
    folders = write_people(source, enrolled, os.path.join(out, "people"), rng, photos_each)
    rows = write_group_photos(source, shown, singles, os.path.join(out, "photos"), rng, group_photos, photos_each)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["photo", "person", "x", "y"])
    writer.writerows([photo, folders.get(name, ""), x, y] for photo, name, x, y in rows)
    write_text(os.path.join(out, "truth.csv"), table.getvalue())
    return folders

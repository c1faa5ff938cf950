"""Images and face geometry: reading and writing images (`images`), the ArcFace 5-point template
and its crop sizes (`template`), crops derived from pre-aligned faces (`crops`), the original's
image augmentation (`augment`), upside-down crops found without labels (`orientation`), and
known-answer faces pasted onto canvases for the detectors (`known_faces`).

Imported by the services (embed and align), the tasks and the benchmarks. Needs NumPy and
OpenCV only; imports nothing of shared/ but its root. images, template and augment stay
Python-2.7 compatible (the Caffe service).
"""

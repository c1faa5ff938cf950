"""The project's small shared library: the embed contract and what every service needs.

schema (output names, exit codes, lists, shards), resumable (the chunked job of embed and
align), backbone (the embed entrypoint), shards (workers and merging). Modules imported by the
VGGFace2 (Caffe) service keep to syntax that Python 2.7 also compiles (no f-strings,
annotations or keyword-only arguments): schema, resumable, backbone, shards, images, storage,
registry, template, augment.
"""

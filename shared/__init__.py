"""The project's small shared library: the embed contract and what every service needs.

Modules imported by the VGGFace2 (Caffe) service keep to syntax that Python 2.7 also
compiles (no f-strings, annotations or keyword-only arguments): contract, images,
storage, registry, template, augment.
"""

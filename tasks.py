"""Pipeline tasks (invoke). Each collection lives in pipeline/<name>.py; this file assembles them.

    invoke data.benchmark          identity folders -> competition layout in <workspace>/dataset
    invoke align.prealigned        112x112 template crops -> every crop size in <workspace>/aligned
    invoke embed.run --models A,B  embed train and test with each model's service
    invoke bench.lfw-pairs --model NAME   LFW-style 10-fold verification accuracy
    invoke images.build [--only NAME] / images.smoke   the Docker images and their smoke tests
Every task takes --workspace DIR (default from invoke.yaml), so several runs live side by side.
"""
from invoke import Collection

from pipeline import align, bench, data, embed, images, weights

namespace = Collection()
for module in (data, align, embed, bench, weights, images):
    namespace.add_collection(Collection.from_module(module))

"""Pipeline tasks (invoke). Each collection lives in pipeline/<name>.py; this file assembles them.

    invoke all --profile quick     the whole pipeline (the default task; see pipeline/workflow.py)
    invoke data.benchmark          identity folders -> competition layout in <workspace>/dataset
    invoke align.prealigned        112x112 template crops -> every crop size in <workspace>/aligned
    invoke embed.run --models A,B  embed train and test with each model's service
    invoke split / heads.train / heads.pseudo / heads.submit / evaluate   the stages of `all`
    invoke bench.lfw-pairs --model NAME   LFW-style 10-fold verification accuracy
    invoke images.build [--only NAME] / images.smoke   the Docker images and their smoke tests
Every task takes --workspace DIR (default from invoke.yaml), so several runs live side by side.
"""
from invoke import Collection

from pipeline import align, bench, data, embed, heads, images, weights, workflow
from pipeline.common import clean_errors

namespace = Collection()
for module in (data, align, embed, heads, bench, weights, images):
    namespace.add_collection(Collection.from_module(module))
namespace.add_task(workflow.all_, name="all", default=True)
namespace.add_task(workflow.split)
namespace.add_task(workflow.evaluate)

for name in namespace.task_names:
    task = namespace[name]
    task.body = clean_errors(task.body)

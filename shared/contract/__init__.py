"""The service contract: the `embed` entrypoint every backbone service exposes and the Backbone
it runs (`backbone`), the resumable chunked job that embed and align share (`resumable`), shards
run as worker processes and merged (`shards`), and every input checked at the door (`validate`:
lists, CSVs, image and split names, labels, the dataset). The output names and exit codes are
the root's `schema`.

Imported by the services' entrypoints; the tasks use `validate` to check a dataset before a run.
Python-2.7 compatible (the Caffe service).
"""

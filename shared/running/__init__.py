"""How the tasks run services: the project's settings from invoke.yaml (`settings`), the local
runner and the service list (`runner`), the docker runner (`docker_runner`) with what a container
may see and use (`container_policy`) and the folders a root caller lends it (`lending`), and
make-like skipping of the pipeline's stages (`stages`).

Imported by the tasks (pipeline/), the benchmarks and the tests; never by a service.
"""

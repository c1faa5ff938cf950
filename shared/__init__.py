"""The library the tasks (pipeline/) and the services (services/) both import, in rooms by role.

Its root holds what every room uses: `schema` (the contract's names: output files, exit codes,
the unknown label, ContractError), `storage` (atomic writes, hashing), `progress` (bars and log
lines), `quiet` (frameworks' start-up chatter) and `hardware` (what this CPU can do, which the
speed settings are chosen from at run time). The packages, each importing only the root and the
packages listed before it:

    faces/     images, the face template, crops, augmentation, orientation, known-answer faces
    method/    the original solution's arithmetic and the competition's formats
    models/    the model registry (models.yaml), its preprocessing and the embed engines
    contract/  the service entrypoint every backbone exposes: its job, shards and input checks
    running/   how the tasks start services (local, docker), the settings, stage skipping
    bench/     helpers of the benchmarks only; nothing in a run imports them

What the VGGFace2 (Caffe) service imports keeps to syntax that Python 2.7 also compiles (no
f-strings, annotations or keyword-only arguments): tests/test_python27.py lists those modules.
"""

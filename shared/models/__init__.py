"""What a backbone is: the model registry (`registry`, reading `models.yaml` beside it: weight
files and their sha256, crop, preprocessing, output, ensemble weights), the preprocessing of a
batch of crops (`preprocess`), and the engines an embed run computes with (`engines`: the
service's own framework, or OpenVINO verified against it).

Imported by every backbone service, the align and head services, the tasks and the benchmarks.
Python-2.7 compatible (the Caffe service).
"""

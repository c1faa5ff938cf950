"""The original solution's arithmetic and the competition's formats, pure NumPy: the training
steps' names (`steps`), fold columns (`folds`), the cyclical learning rate (`clr`), the ensemble
and its pseudo-label and unknown rules (`ensemble`), MAP@5 and the unknown scores (`metrics`),
the submission file (`submission`), and the benchmark built from identity folders in the
competition's layout (`benchmark`).

Imported by the head service, the tasks and the tests; tested directly, without a service.
`steps` stays Python-2.7 compatible (the registry reads it in the Caffe service).
"""

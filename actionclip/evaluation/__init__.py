"""Measuring detection and retrieval in the numbers papers report.

``timeline`` finds when actions happen and ``search`` finds moments; this package says how well, on
annotated footage, with the field's protocols restated as our own code and checked against the
reference implementations (see docs/evaluation.md):

- :mod:`~actionclip.evaluation.detection`: temporal IoU, interpolated AP and the greedy matching of
  ActivityNet's ``eval_detection.py`` (the one place the arithmetic lives);
- :mod:`~actionclip.evaluation.activitynet`: ActivityNet's JSON formats and ``evaluate_detection``;
- :mod:`~actionclip.evaluation.thumos14`: the THUMOS14 kit's text formats, ambiguous segments, mAP;
- :mod:`~actionclip.evaluation.predictions`: timelines written as either prediction format;
- :mod:`~actionclip.evaluation.retrieval`: R@K, median and mean rank (CLIP4Clip's formula);
- :mod:`~actionclip.evaluation.splits`: open-vocabulary seen/unseen class splits, mean and std;
- :mod:`~actionclip.evaluation.report`: tables and precision-recall plots of the results.

Every module here imports numpy only; nothing imports torch.
"""
